/**
 * MQTT 3.1.1 rules aedes does not enforce on its own, enforced around it
 * (tests: tests/integration/broker/conformance/). `conformant(aedes)` installs:
 *
 * - per connection, a look at each packet's fixed header as aedes reads it (`FrameScanner`): a packet
 *   larger than `maxPacketBytes` closes the connection before its body is buffered, and a CONNECT with
 *   an unsupported protocol level gets CONNACK 0x01 [MQTT-3.1.2-2] (mqtt-packet would drop it silently);
 * - per connection, a check of each parsed packet before aedes handles it (`violation`, `refusal`):
 *   a protocol violation closes the connection [MQTT-4.8.0-1], a refused CONNECT gets its CONNACK
 *   return code, and nothing after either is processed [MQTT-3.1.4-5];
 * - one SUBACK return code per topic filter, duplicates included [MQTT-3.8.4-4] [MQTT-3.8.4-5];
 * - an incoming PUBLISH's DUP flag not passed on [MQTT-3.3.1-3];
 * - delivery at no more than the subscription's QoS [MQTT-3.8.4-6] (aedes caps it only for a
 *   subscription whose filter is the topic itself), on the authorizeForward hook;
 * - on the session store: DUP set on PUBLISH packets sent again after a reconnect [MQTT-3.3.1-1],
 *   and no `$` topics among the retained messages for filters that start with a wildcard [MQTT-4.7.2-1].
 */
import type { EventEmitter } from "node:events";
import { pipeline, Transform, type Readable } from "node:stream";
import type { Aedes, Client } from "aedes";
import mqttPacket, { type IConnectPacket, type ISubscribePacket, type Packet } from "mqtt-packet";
import { DEFAULT_MAX_PACKET_BYTES } from "../../config/schema";
import type { Logger } from "../log";
import { isValidTopicFilter, topicMatches } from "../protocol";

export interface ConformanceOptions {
  /** Largest packet (fixed header included) a client may send; a larger one closes its connection. */
  maxPacketBytes?: number;
}

/** CONNACK return codes (MQTT 3.1.1 table 3.1). */
const ConnackCode = { unacceptableProtocolVersion: 1, identifierRejected: 2 } as const;

// ——— rules on parsed packets (pure) ———

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

// ——— the byte stream: packet sizes and the CONNECT's protocol level ———

const HEADER = 0;
const LENGTH = 1;
const BODY = 2;
/** Protocol name and level of a CONNECT: 2 bytes of length, "MQIsdp" at most, 1 byte of level. */
const CONNECT_HEAD = 9;

/**
 * Follows the packet boundaries of what a client sends, reading only fixed headers (and the first bytes
 * of the first packet), so a too large packet is caught at its header, before its body is buffered.
 */
export class FrameScanner {
  private phase = HEADER;
  private length = 0;
  private multiplier = 1;
  private headerBytes = 0;
  private remaining = 0;
  private first = true;
  /** The first bytes of the first packet's body, while it may be a CONNECT whose level is not known yet. */
  private head: number[] | null = null;

  constructor(private readonly maxPacketBytes: number) {}

  /** Feeds the next bytes; returns what is wrong with them, or undefined. */
  feed(chunk: Uint8Array): { tooLarge: number } | { protocolLevel: number } | undefined {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.phase === HEADER) {
        if (this.first) this.head = chunk[pos]! >> 4 === 1 ? [] : null;
        this.phase = LENGTH;
        this.length = 0;
        this.multiplier = 1;
        this.headerBytes = 1;
        pos++;
      } else if (this.phase === LENGTH) {
        const byte = chunk[pos++]!;
        this.headerBytes++;
        this.length += (byte & 0x7f) * this.multiplier;
        this.multiplier *= 128;
        // A fifth length byte is malformed: mqtt-packet closes the connection for that itself.
        if (byte & 0x80 && this.headerBytes <= 4) continue;
        const size = this.headerBytes + this.length;
        if (size > this.maxPacketBytes) return { tooLarge: size };
        this.remaining = this.length;
        this.phase = this.length > 0 ? BODY : HEADER;
        if (this.phase === HEADER) this.first = false;
      } else {
        const n = Math.min(this.remaining, chunk.length - pos);
        if (this.first && this.head) {
          for (let i = 0; i < n && this.head.length < CONNECT_HEAD; i++) this.head.push(chunk[pos + i]!);
          const level = this.connectLevel();
          if (level !== undefined) this.head = null;
          if (level != null && level !== 3 && level !== 4 && level !== 5) return { protocolLevel: level };
        }
        this.remaining -= n;
        pos += n;
        if (this.remaining === 0) {
          this.phase = HEADER;
          this.first = false;
        }
      }
    }
    return undefined;
  }

  /**
   * The CONNECT's protocol level (bridge bit cleared); undefined while not all read; null if the
   * protocol name is not "MQTT" or "MQIsdp" (mqtt-packet refuses those, which [MQTT-3.1.2-1] allows).
   */
  private connectLevel(): number | null | undefined {
    const head = this.head!;
    if (head.length < 2) return undefined;
    const nameLength = (head[0]! << 8) | head[1]!;
    if (nameLength !== 4 && nameLength !== 6) return null;
    if (head.length < 3 + nameLength) return undefined;
    const name = String.fromCharCode(...head.slice(2, 2 + nameLength));
    if (name !== "MQTT" && name !== "MQIsdp") return null;
    return head[2 + nameLength]! & 0x7f;
  }
}

// ——— installing it on aedes ———

/** What aedes keeps on a client that the rules below read (not in aedes' typings). */
interface ClientInternals {
  /** mqtt-packet's parser; aedes handles what it emits as "packet". */
  _parser?: EventEmitter;
  /** The client's subscriptions by topic filter, with the QoS granted. */
  subscriptions?: Record<string, { qos: number }>;
}

/** A SUBSCRIBE whose SUBACK this module sends (it named a filter twice). */
interface CombinedSuback {
  packet: ISubscribePacket;
  messageId: number;
  filters: string[];
  requested: number[];
}

type Persistence = {
  outgoingStream(client: unknown): Readable;
  createRetainedStreamCombi(patterns: string[]): Readable;
};

/** Installs the rules on a broker (before any connection); returns the same broker. */
export function conformant(aedes: Aedes, options: ConformanceOptions, log: Logger): Aedes {
  const combined = new WeakMap<Client, CombinedSuback[]>();

  const handle = aedes.handle;
  aedes.handle = (conn, req) => {
    const client = handle(conn, req);
    guard(client, options, log, combined);
    return client;
  };

  // [MQTT-3.8.4-4] [MQTT-3.8.4-5] [MQTT-3.9.3-1] the SUBACK of a SUBSCRIBE that named a filter twice:
  // aedes handled each filter once (the last request wins, as if they came one by one).
  aedes.on("subscribe", (subs, client) => {
    const pending = combined.get(client);
    const i = pending?.findIndex((p) => (p.packet.subscriptions as unknown) === subs) ?? -1;
    if (i < 0) return;
    const { messageId, filters, requested } = pending!.splice(i, 1)[0]!;
    const granted = new Map(subs.map((s) => [s.topic, s.qos as number]));
    const codes = filters.map((filter, j) => (granted.get(filter) === 0x80 ? 0x80 : requested[j]!));
    if (!client.closed) mqttPacket.writeToStream({ cmd: "suback", messageId, granted: codes }, client.conn as unknown as NodeJS.WritableStream);
  });

  // [MQTT-3.8.4-6] at most the QoS granted. aedes caps it only by a subscription to the topic itself
  // (so one to `a/+` at QoS 1 got QoS 2 messages), and not at all for what it queued while the client
  // was offline. The packet is this delivery's own copy (aedes writes it as is when resending a
  // session's queue), so it is capped in place. With overlapping subscriptions the cap is the highest
  // QoS among them; aedes still delivers one copy, at the QoS of whichever subscription it matched
  // first, so [MQTT-3.3.5-1] (the highest) is not guaranteed there.
  const authorizeForward = aedes.authorizeForward;
  aedes.authorizeForward = function (client, packet) {
    const forwarded = authorizeForward.call(this, client, packet);
    if (!forwarded || forwarded.qos === 0) return forwarded;
    const granted = grantedQoS(client, forwarded.topic);
    if (granted >= 0 && granted < forwarded.qos) forwarded.qos = granted as 0 | 1 | 2;
    return forwarded;
  };

  const persistence = (aedes as unknown as { persistence: Persistence }).persistence;
  // [MQTT-3.3.1-1] a queued PUBLISH that already has a packet identifier was sent before: when the
  // session resumes it goes out again with that identifier [MQTT-4.4.0-1], and with DUP set. One
  // queued while the client was offline has none yet: its first delivery has DUP 0 [MQTT-3.3.1-3].
  const outgoingStream = persistence.outgoingStream.bind(persistence);
  persistence.outgoingStream = (client) =>
    through(outgoingStream(client), (packet: { cmd?: string; messageId?: number | null; dup?: boolean }) =>
      (packet.cmd ?? "publish") === "publish" && packet.messageId != null ? { ...packet, dup: true } : packet,
    );
  // [MQTT-4.7.2-1] a `$` topic's retained message only for a filter that does not start with a wildcard.
  const retained = persistence.createRetainedStreamCombi.bind(persistence);
  persistence.createRetainedStreamCombi = (patterns) =>
    through(retained(patterns), (packet: { topic: string }) =>
      !packet.topic.startsWith("$") || patterns.some((p) => topicMatches(p, packet.topic)) ? packet : undefined,
    );

  return aedes;
}

/** The highest QoS granted to the client's subscriptions that match the topic; -1 if none does. */
function grantedQoS(client: Client, topic: string): number {
  const subscriptions = (client as unknown as ClientInternals).subscriptions;
  let max = -1;
  for (const filter in subscriptions) {
    const qos = subscriptions[filter]!.qos;
    if (qos > max && topicMatches(filter, topic)) max = qos;
  }
  return max;
}

/** Watches one connection: sizes and protocol level on the bytes, the rules on each packet. */
function guard(client: Client, options: ConformanceOptions, log: Logger, combined: WeakMap<Client, CombinedSuback[]>): void {
  const conn = client.conn as unknown as EventEmitter & NodeJS.WritableStream & { destroy(): void };
  const parser = (client as unknown as ClientInternals)._parser;
  const [enqueue] = parser?.listeners("packet") ?? [];
  if (!parser || !enqueue) {
    log.error("MQTT conformance checks not installed: aedes has no packet parser where expected");
    return;
  }
  let closing = false;
  const close = (reason: string) => {
    closing = true;
    log.debug("MQTT client disconnected", { client: client.id, reason });
    conn.destroy();
  };
  /** CONNACK with a refusal, then close [MQTT-3.2.2-5]; nothing the client sent after is processed. */
  const refuse = (returnCode: number, reason: string) => {
    closing = true;
    log.debug("MQTT connection refused", { returnCode, reason });
    conn.write(mqttPacket.generate({ cmd: "connack", returnCode, sessionPresent: false }), () => conn.destroy());
  };

  // aedes reads with read(); a "data" listener sees each chunk as it is read, without changing the flow.
  const maxPacketBytes = options.maxPacketBytes ?? DEFAULT_MAX_PACKET_BYTES;
  const scanner = new FrameScanner(maxPacketBytes);
  const onData = (chunk: Buffer) => {
    if (closing) return;
    const problem = scanner.feed(chunk);
    if (!problem) return;
    if ("tooLarge" in problem) {
      log.warn("MQTT packet too large", { client: client.id, bytes: problem.tooLarge, maxPacketBytes });
      close(`packet of ${problem.tooLarge} bytes is over broker.maxPacketBytes`);
    } else {
      conn.off("data", onData);
      refuse(ConnackCode.unacceptableProtocolVersion, `[MQTT-3.1.2-2] protocol level ${problem.protocolLevel}`);
    }
  };
  conn.on("data", onData);

  parser.removeListener("packet", enqueue as (...args: unknown[]) => void);
  parser.on("packet", function (this: unknown, packet: Packet) {
    if (closing) return;
    const wrong = violation(packet);
    if (wrong) return close(wrong);
    if (packet.cmd === "connect") {
      const code = refusal(packet);
      if (code !== undefined) return refuse(code, "[MQTT-3.1.3-8] empty client identifier without a clean session");
    } else if (packet.cmd === "subscribe") {
      combineDuplicates(client, packet, combined);
    } else if (packet.cmd === "publish") {
      // [MQTT-3.3.1-3] DUP on the way out says whether that copy is a resend, not whether this one was
      // (aedes would pass it on to subscribers, and keep it on the retained message).
      packet.dup = false;
    }
    enqueue.call(this, packet);
  });
}

/**
 * A SUBSCRIBE naming a filter more than once: aedes would answer one return code per distinct filter.
 * It gets each filter once (its last request, which is what handling them one by one leaves in
 * effect) and no packet identifier, so aedes sends no SUBACK; the "subscribe" event sends it.
 */
function combineDuplicates(client: Client, packet: ISubscribePacket, combined: WeakMap<Client, CombinedSuback[]>): void {
  const filters = packet.subscriptions.map((s) => s.topic);
  const last = new Map(packet.subscriptions.map((s) => [s.topic, s]));
  if (last.size === filters.length) return;
  const entry = { packet, messageId: packet.messageId ?? 0, filters, requested: packet.subscriptions.map((s) => s.qos as number) };
  let pending = combined.get(client);
  if (!pending) combined.set(client, (pending = []));
  pending.push(entry);
  packet.subscriptions = [...last.values()];
  (packet as { messageId?: number }).messageId = undefined;
}

/** `source` mapped through `fn` (undefined drops the item); errors travel downstream. */
function through<T, U>(source: Readable, fn: (item: T) => U | undefined): Readable {
  const map = new Transform({
    objectMode: true,
    transform(item: T, _encoding, callback) {
      const out = fn(item);
      if (out !== undefined) this.push(out);
      callback();
    },
  });
  return pipeline(source, map, () => {});
}
