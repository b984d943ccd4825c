/**
 * The bus's end of a plugin worker's events port: each batch of committed events becomes CloudEvents
 * published at QoS 1 on the service's own topics, and the batch is answered with the seqs the broker
 * took and those it refused. The topic and source come from the name the port was given for the
 * service, never from the worker; what arrives on the port is read as untrusted (decode).
 */
import type { Logger } from "../log";
import { Topics, isValidEventType, toEnvelope, type CommittedEvent } from "../protocol";
import type { LogGeneration } from "../storage/generation";
import type { SubscriptionClock } from "../broker/subscription-clock";
import { decode, type PublishAck, type PublishBatch } from "../worker/channel";

/** Publishes one message at QoS 1; `done` once the broker has taken it (or with why it did not). */
export type Send = (topic: string, payload: string, done: (err?: Error | null) => void) => void;

/**
 * Whether anyone can want a message on a topic now (a subscription, online or of an offline
 * persistent session). An event nobody wants is taken as sent without going through the broker: no
 * envelope is built and nothing is published. Its type is told back as quiet, with the broker's
 * SubscriptionClock as it read before the check (and the clock's buffer, the first time on a port);
 * the worker takes later events of those types as sent itself while the clock reads the same
 * (publisher.ts). Without an audience every event is published.
 */
export interface Audience {
  wants(topic: string): boolean;
  clock: SubscriptionClock;
}

/** Serves `port` until the returned function is called (or the port closes). */
export function serveEventPort(send: Send, port: MessagePort, service: string, generation: LogGeneration | null, log: Pick<Logger, "error">, audience?: Audience): () => void {
  let toldClock = false;
  const answer = (ack: PublishAck) => {
    if (ack.quiet && !toldClock) {
      ack.quiet.clock = audience!.clock.buffer;
      toldClock = true;
    }
    port.postMessage(ack);
  };
  port.onmessage = (e) => {
    let batch: PublishBatch;
    try {
      batch = decode<PublishBatch>(e.data);
      if (!Array.isArray(batch.events)) throw new Error("no events");
    } catch (err) {
      log.error("unreadable events from a service", { service, error: err instanceof Error ? err.message : String(err) });
      return;
    }
    publishEvents(send, service, batch.events, generation, log, answer, audience);
  };
  return () => port.close();
}

/**
 * Publishes a service's committed events (QoS 1, in order) and answers once the broker has taken or
 * refused each. An event whose type is not valid, or that is not an event, is dropped (and counted
 * as sent: it can never be published). Callbacks, not promises: this runs for every commit that emitted.
 */
export function publishEvents(
  send: Send,
  service: string,
  events: readonly CommittedEvent[],
  generation: LogGeneration | null,
  log: Pick<Logger, "error">,
  done: (ack: PublishAck) => void,
  audience?: Audience,
): void {
  const ack: PublishAck = { sent: [], unsent: [] };
  const at = audience?.clock.now();
  let left = events.length + 1;
  const settled = () => {
    if (--left === 0) done(ack);
  };
  for (const e of events) {
    if (typeof e !== "object" || e === null || !Number.isSafeInteger(e.seq)) {
      log.error("event dropped: not an event", { service });
      settled();
      continue;
    }
    const seq = e.seq;
    let topic: string;
    let payload: string;
    try {
      if (!isValidEventType(e.type)) throw new Error(`invalid type ${JSON.stringify(e.type)}`);
      topic = Topics.event(service, e.type);
      if (audience && !audience.wants(topic)) {
        ack.sent.push(seq);
        ack.quiet ??= { types: [], at: at! };
        if (!ack.quiet.types.includes(e.type)) ack.quiet.types.push(e.type);
        settled();
        continue;
      }
      payload = JSON.stringify(toEnvelope(service, e, generation));
    } catch (err) {
      log.error("event dropped", { service, seq, error: err instanceof Error ? err.message : String(err) });
      ack.sent.push(seq);
      settled();
      continue;
    }
    send(topic, payload, (err) => {
      if (err) {
        ack.unsent.push(seq);
        ack.error ??= err.message;
      } else ack.sent.push(seq);
      settled();
    });
  }
  settled();
}
