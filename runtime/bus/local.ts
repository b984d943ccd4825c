/**
 * The Bus on the embedded broker, in the thread that runs aedes: no socket on the path.
 * Subscribers see what outside clients publish too.
 *
 * The runtime's publishes reach aedes a window at a time: at most `WINDOW` of them are in aedes at once,
 * the rest wait here in order, and each further batch starts on a later turn of the event loop. A commit of
 * 100,000 events is published in batches between which the gateway and the clients are served.
 */
import type { Aedes, AedesPublishPacket, PublishPacket } from "aedes";
import type { Logger } from "../log";
import type { Bus } from "./bus";
import type { Emitter } from "../broker/emitter";
import { serveEventPort, type Audience } from "./event-port";

/** What a subscriber throws is logged; the other subscribers still get the message. */
export function localBus(aedes: Aedes, log: Pick<Logger, "error">): Bus {
  const publish = windowed(aedes);
  // The payload becomes a Buffer when its turn comes (what waits stays as it was given).
  const send = (topic: string, payload: string, done: (err?: Error | null) => void) =>
    publish({ cmd: "publish", topic, payload, qos: 1, retain: false, dup: false }, done);
  return {
    serveEvents: (port, service, generation) => serveEventPort(send, port, service, generation, log, audience(aedes)),
    // On the broker's own thread the broker is never lost while the bus exists.
    onReconnect() {},
    publish(topic, payload, options = {}) {
      return new Promise((resolve, reject) => {
        publish(
          {
            cmd: "publish",
            topic,
            payload,
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
          log.error("bus subscriber threw", { topic: packet.topic, error: err instanceof Error ? err.message : String(err) });
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

/**
 * Who can want a message now: a subscriber in aedes' emitter (a connected client, a bus handler) or an
 * offline persistent session's subscription in the store. What neither wants is not worth aedes'
 * publish pipeline (its hooks, the store, the emitter's queue).
 */
function audience(aedes: Aedes): Audience | undefined {
  const inside = aedes as unknown as { mq: Partial<Emitter<{ topic: string }>>; persistence: { queuesFor?(topic: string): boolean } };
  const { mq, persistence } = inside;
  // Another emitter or store than the runtime's own cannot say: then everything is published.
  if (typeof mq.wants !== "function" || !mq.clock || typeof persistence.queuesFor !== "function") return undefined;
  return { wants: (topic) => mq.wants!(topic) || persistence.queuesFor!(topic), clock: mq.clock };
}

/** The runtime's publishes in aedes at once; more wait in order (see the file's comment). */
export const WINDOW = 256;

type Done = (err?: Error | null) => void;

/** aedes.publish, `WINDOW` at a time, in order. */
function windowed(aedes: Aedes): (packet: PublishPacket, done: Done) => void {
  let inFlight = 0;
  let scheduled = false;
  let packets: PublishPacket[] = [];
  let callbacks: Done[] = [];
  let head = 0;
  const start = (packet: PublishPacket, done: Done) => {
    inFlight++;
    if (typeof packet.payload === "string") packet.payload = Buffer.from(packet.payload);
    aedes.publish(packet, (err) => {
      inFlight--;
      if (head < packets.length && !scheduled) {
        scheduled = true;
        setImmediate(next);
      }
      done(err);
    });
  };
  // A batch per turn: what completes meanwhile (in the same turn) leaves room for the next one.
  const next = () => {
    scheduled = false;
    while (head < packets.length && inFlight < WINDOW) {
      const packet = packets[head]!;
      const done = callbacks[head]!;
      head++;
      if (head === packets.length) {
        packets = [];
        callbacks = [];
        head = 0;
      } else if (head >= 4096 && head * 2 >= packets.length) {
        packets = packets.slice(head);
        callbacks = callbacks.slice(head);
        head = 0;
      }
      start(packet, done);
    }
  };
  return (packet, done) => {
    if (inFlight < WINDOW && head === packets.length) return start(packet, done);
    packets.push(packet);
    callbacks.push(done);
  };
}
