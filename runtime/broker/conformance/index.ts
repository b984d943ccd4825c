/**
 * MQTT 3.1.1 rules aedes does not enforce on its own, enforced around it
 * (tests: tests/integration/broker/conformance/). `conformant(aedes)` installs:
 *
 * - per connection (guard.ts), a look at each packet's fixed header as aedes reads it (frames.ts): a
 *   packet larger than `maxPacketBytes` closes the connection before its body is buffered, and a CONNECT
 *   with an unsupported protocol level gets CONNACK 0x01 [MQTT-3.1.2-2] (mqtt-packet would drop it silently);
 * - per connection (guard.ts), a check of each parsed packet before aedes handles it (rules.ts):
 *   a protocol violation closes the connection [MQTT-4.8.0-1], a refused CONNECT gets its CONNACK
 *   return code, and nothing after either is processed [MQTT-3.1.4-5];
 * - one SUBACK return code per topic filter, duplicates included [MQTT-3.8.4-4] [MQTT-3.8.4-5] (suback.ts);
 * - an incoming PUBLISH's DUP flag not passed on [MQTT-3.3.1-3] (guard.ts);
 * - per connection (delivery.ts), aedes' delivery functions replaced: one copy per message however many
 *   of the client's subscriptions match, at the highest QoS among them [MQTT-3.3.5-1], never above the
 *   QoS granted [MQTT-3.8.4-6] (also for what a session had queued: on the authorizeForward hook), none
 *   taken for a copy for reaching the client after a message published later (one that waited for the
 *   store; copies.ts) [MQTT-4.3.2-2], and retained messages sent on SUBSCRIBE at QoS 1/2 kept in a
 *   persistent session's queue until acknowledged [MQTT-4.4.0-1];
 * - session present 1 for a stored session without subscriptions [MQTT-3.2.2-2] (sessions.ts);
 * - a QoS 1 PUBLISH acknowledged once it is stored, not before [MQTT-4.3.2-2] (acks.ts);
 * - on the session store (store.ts): DUP set on PUBLISH packets sent again after a reconnect
 *   [MQTT-3.3.1-1], no `$` topics among the retained messages for filters that start with a
 *   wildcard [MQTT-4.7.2-1], one queued copy per client [MQTT-3.3.5-1].
 */
import type { Aedes } from "aedes";
import type { Logger } from "../../log";
import { acknowledgeWhenStored } from "./acks";
import { capForwardedQoS, deliverOnce } from "./delivery";
import { guard } from "./guard";
import { recordSessions } from "./sessions";
import { wrapStore } from "./store";
import { combinedSubacks } from "./suback";

export { FrameScanner } from "./frames";
export { isTopicFilter, isTopicName, isWellFormed, refusal, violation } from "./rules";

export interface ConformanceOptions {
  /** Largest packet (fixed header included) a client may send; a larger one closes its connection. */
  maxPacketBytes: number;
}

/** Installs the rules on a broker (before any connection); returns the same broker. */
export function conformant(aedes: Aedes, options: ConformanceOptions, log: Logger): Aedes {
  const combined = combinedSubacks(aedes);
  const handle = aedes.handle;
  aedes.handle = (conn, req) => {
    const client = handle(conn, req);
    guard(client, options.maxPacketBytes, log, combined);
    deliverOnce(aedes, client);
    return client;
  };
  capForwardedQoS(aedes);
  recordSessions(aedes);
  wrapStore(aedes);
  acknowledgeWhenStored(aedes);
  return aedes;
}
