/**
 * The runtime's own publish/subscribe on the embedded broker: in-process, no
 * socket on the path. Subscribers see what outside clients publish too.
 */
import type { Aedes, AedesPublishPacket } from "aedes";

export type BusHandler = (topic: string, payload: Buffer) => void;

export interface Bus {
  publish(topic: string, payload: string | Buffer, options?: { qos?: 0 | 1; retain?: boolean }): Promise<void>;
  /** publish at QoS 1 with a callback instead of a promise (the events hot path). */
  send(topic: string, payload: string, done: (err?: Error | null) => void): void;
  /** Removes every retained message on topics matching `filter` (e.g. state left by a previous run). */
  clearRetained(filter: string): Promise<number>;
  /** Subscribes an in-process handler to an MQTT topic filter; returns the unsubscribe function. */
  subscribe(filter: string, handler: BusHandler): Promise<() => Promise<void>>;
}

/** `onHandlerError` hears what a subscriber threw; the other subscribers still get the message. */
export function createBus(aedes: Aedes, onHandlerError: (err: unknown, topic: string) => void = () => {}): Bus {
  return {
    send(topic, payload, done) {
      aedes.publish({ cmd: "publish", topic, payload: Buffer.from(payload), qos: 1, retain: false, dup: false }, done);
    },
    publish(topic, payload, options = {}) {
      return new Promise((resolve, reject) => {
        aedes.publish(
          {
            cmd: "publish",
            topic,
            payload: typeof payload === "string" ? Buffer.from(payload) : payload,
            qos: options.qos ?? 1,
            retain: options.retain ?? false,
            dup: false,
          },
          (err) => (err ? reject(err) : resolve()),
        );
      });
    },
    async clearRetained(filter) {
      const topics: string[] = [];
      // aedes's types do not declare its persistence; the stream is aedes-persistence's retained stream.
      const persistence = (aedes as unknown as { persistence: { createRetainedStreamCombi(p: string[]): AsyncIterable<{ topic: string }> } }).persistence;
      for await (const packet of persistence.createRetainedStreamCombi([filter])) topics.push(packet.topic);
      // An empty retained payload clears the topic [MQTT-3.3.1-10].
      await Promise.all(topics.map((topic) => this.publish(topic, Buffer.alloc(0), { qos: 0, retain: true })));
      return topics.length;
    },
    subscribe(filter, handler) {
      const deliver = (packet: AedesPublishPacket, done: () => void) => {
        try {
          handler(packet.topic, packet.payload as Buffer);
        } catch (err) {
          onHandlerError(err, packet.topic);
        }
        done();
      };
      return new Promise((resolve) => {
        aedes.subscribe(filter, deliver, () =>
          resolve(() => new Promise<void>((done) => aedes.unsubscribe(filter, deliver, () => done()))),
        );
      });
    },
  };
}
