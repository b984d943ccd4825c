/**
 * MQTT 3.1.1 rules on parsed packets that aedes does not enforce (pure): what makes a packet from a
 * client a protocol violation, and which well-formed CONNECTs are refused.
 */
import type { IConnectPacket, Packet } from "mqtt-packet";
import { isValidTopicFilter } from "../../protocol";

/** CONNACK return codes (MQTT 3.1.1 table 3.1). */
export const ConnackCode = { unacceptableProtocolVersion: 1, identifierRejected: 2 } as const;

/**
 * A string as decoded from the wire is acceptable: no U+0000 [MQTT-1.5.3-2] and no U+FFFD. mqtt-packet
 * decodes ill-formed UTF-8 (surrogates included) to U+FFFD, so that is the only trace of it left
 * [MQTT-1.5.3-1]; refusing it also keeps a substituted name from being routed [MQTT-4.7.3-4].
 */
export function isWellFormed(s: string): boolean {
  return !s.includes("\u0000") && !s.includes("\uFFFD");
}

/** A topic name: at least one character [MQTT-4.7.3-1], no wildcards [MQTT-3.3.2-2], well-formed. */
export function isTopicName(topic: string): boolean {
  return topic.length > 0 && !topic.includes("+") && !topic.includes("#") && isWellFormed(topic);
}

/** A topic filter: wildcards occupying whole levels, `#` last [MQTT-4.7.1-2] [MQTT-4.7.1-3], well-formed. */
export function isTopicFilter(filter: string): boolean {
  return isValidTopicFilter(filter) && isWellFormed(filter);
}

/** Packets whose body is only a packet identifier. */
const ACKS = new Set(["puback", "pubrec", "pubrel", "pubcomp"]);

/**
 * Why a packet from a client breaks MQTT 3.1.1 where aedes would accept it (the clause, then what),
 * or undefined. The connection is then closed [MQTT-4.8.0-1]; a CONNECT gets no CONNACK [MQTT-3.1.4-1].
 */
export function violation(packet: Packet): string | undefined {
  switch (packet.cmd) {
    case "connect": {
      const { will } = packet;
      if (!isWellFormed(packet.clientId)) return "[MQTT-3.1.3-4] client identifier is not well-formed UTF-8";
      if (packet.password !== undefined && packet.username === undefined) return "[MQTT-3.1.2-22] password without user name";
      if (packet.username !== undefined && !isWellFormed(packet.username)) return "[MQTT-3.1.3-11] user name is not well-formed UTF-8";
      if (will && (will.qos as number) > 2) return "[MQTT-3.1.2-14] will QoS 3";
      if (will && !isTopicName(will.topic)) return "[MQTT-3.1.3-10] will topic is not a valid topic name";
      return undefined;
    }
    case "publish":
      if (!isTopicName(packet.topic)) return "[MQTT-3.3.2-2] [MQTT-4.7.3-1] [MQTT-1.5.3-2] invalid topic name";
      if (packet.qos > 0 && !packet.messageId) return "[MQTT-2.3.1-1] PUBLISH with QoS > 0 and packet identifier 0";
      if (packet.qos === 0 && packet.dup) return "[MQTT-3.3.1-2] DUP set on a QoS 0 PUBLISH";
      return undefined;
    case "subscribe":
      if (!packet.messageId) return "[MQTT-2.3.1-1] SUBSCRIBE with packet identifier 0";
      if (packet.subscriptions.length === 0) return "[MQTT-3.8.3-3] SUBSCRIBE without a topic filter";
      if (!packet.subscriptions.every((s) => isTopicFilter(s.topic))) return "[MQTT-4.7.1-2] [MQTT-4.7.1-3] invalid topic filter in SUBSCRIBE";
      return undefined;
    case "unsubscribe":
      if (!packet.messageId) return "[MQTT-2.3.1-1] UNSUBSCRIBE with packet identifier 0";
      if (packet.unsubscriptions.length === 0) return "[MQTT-3.10.3-2] UNSUBSCRIBE without a topic filter";
      if (!packet.unsubscriptions.every(isTopicFilter)) return "[MQTT-4.7.1-2] [MQTT-4.7.1-3] invalid topic filter in UNSUBSCRIBE";
      return undefined;
    case "pingreq":
    case "disconnect":
      return packet.length ? `[MQTT-4.8.0-1] ${packet.cmd.toUpperCase()} with a body` : undefined;
    default:
      return ACKS.has(packet.cmd) && packet.length !== 2 ? `[MQTT-4.8.0-1] ${packet.cmd.toUpperCase()} of ${packet.length} bytes` : undefined;
  }
}

/** The CONNACK return code a well-formed CONNECT is refused with (aedes would accept it), or undefined. */
export function refusal(packet: IConnectPacket): number | undefined {
  // [MQTT-3.1.3-8] an empty client identifier needs a clean session (and MQTT 3.1 has none at all).
  if (packet.clientId === "" && (!packet.clean || packet.protocolVersion === 3)) return ConnackCode.identifierRejected;
  return undefined;
}
