/**
 * Each client's outgoing queue, in SQLite only: QoS 1/2 publishes for a
 * persistent session (queued while it is offline, and in flight while it is
 * online), and the pubrels of QoS 2 deliveries awaiting PUBCOMP. A client
 * holds at most `maxQueued` publishes; past that the oldest are dropped and
 * counted.
 */
import type { Database } from "bun:sqlite";
import AedesPacket from "aedes-packet";
import { decodePacket, encodePacket, type StoredPacket } from "./codec";
import { pages } from "./paging";

interface Row {
  seq: number;
  message_id: number | null;
  payload: Uint8Array | string | null;
  meta: string;
}

/** aedes-packet's constructor (its typings declare a namespace, not the function it exports). */
const Packet = AedesPacket as unknown as new (original: object) => StoredPacket;

type Bytes = Uint8Array | string | null;
type Id = string | number | null;

/** Who a packet is queued for: a subscription from the trie (with its QoS and retain-as-published flag), or just a client. */
export interface Target {
  clientId: string;
  topic?: string;
  qos?: number;
  rap?: boolean;
}

/** What aedes passes in: a packet that came from this queue, an ack, or a pubrel. */
export interface QueuePacket {
  cmd?: string;
  brokerId?: string;
  brokerCounter?: number;
  messageId?: number;
  [key: string]: unknown;
}

function statements(db: Database) {
  const columns = "seq, message_id, payload, meta";
  return {
    insert: db.query<void, [string, string, Id, Id, Bytes, string]>(
      "INSERT INTO outgoing (client_id, cmd, broker_id, broker_counter, payload, meta) VALUES (?, ?, ?, ?, ?, ?)",
    ),
    queued: db.query<{ n: number }, [string]>("SELECT n FROM queued WHERE client_id = ?"),
    dropOldest: db.query<void, [string, number]>(
      "DELETE FROM outgoing WHERE seq IN (SELECT seq FROM outgoing WHERE client_id = ? AND cmd = 'publish' ORDER BY seq LIMIT ?)",
    ),
    // What aedes-persistence's memory queue finds by walking the queue in order: the first entry from
    // the same broker with the same counter, or from another broker with the same message id.
    byOrigin: db.query<{ seq: number }, [string, Id, Id]>(
      "SELECT seq FROM outgoing WHERE client_id = ? AND broker_id IS ? AND broker_counter IS ? ORDER BY seq LIMIT 1",
    ),
    byMessageIdElsewhere: db.query<{ seq: number }, [string, number, Id]>(
      "SELECT seq FROM outgoing WHERE client_id = ? AND message_id = ? AND broker_id IS NOT ? ORDER BY seq LIMIT 1",
    ),
    setMessageId: db.query<void, [number | null, number]>("UPDATE outgoing SET message_id = ? WHERE seq = ?"),
    replace: db.query<void, [string, Id, Id, number | null, Bytes, string, number]>(
      "UPDATE outgoing SET cmd = ?, broker_id = ?, broker_counter = ?, message_id = ?, payload = ?, meta = ? WHERE seq = ?",
    ),
    byMessageId: db.query<Row, [string, number]>(`SELECT ${columns} FROM outgoing WHERE client_id = ? AND message_id = ? ORDER BY seq LIMIT 1`),
    byOriginRow: db.query<Row, [string, Id, Id]>(
      `SELECT ${columns} FROM outgoing WHERE client_id = ? AND broker_id IS ? AND broker_counter IS ? AND message_id IS NULL ORDER BY seq LIMIT 1`,
    ),
    remove: db.query<void, [number]>("DELETE FROM outgoing WHERE seq = ?"),
    idsInUse: db.query<{ message_id: number }, [string]>("SELECT message_id FROM outgoing WHERE client_id = ? AND message_id IS NOT NULL"),
    last: db.query<{ seq: number | null }, [string]>("SELECT MAX(seq) AS seq FROM outgoing WHERE client_id = ?"),
    page: db.query<Row, [string, number, number, number]>(
      `SELECT ${columns} FROM outgoing WHERE client_id = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?`,
    ),
  };
}

/**
 * One target per client [MQTT-3.3.5-1]: aedes lists a persistent session once per matching
 * subscription; a message is queued once, at the highest QoS among them.
 */
export function onePerClient<T extends Target>(targets: T[]): T[] {
  if (targets.length < 2) return targets;
  const byClient = new Map<string, T>();
  for (const t of targets) {
    const seen = byClient.get(t.clientId);
    if (!seen) byClient.set(t.clientId, t);
    else byClient.set(t.clientId, { ...seen, qos: Math.max(seen.qos ?? 2, t.qos ?? 2), rap: !!(seen.rap || t.rap) });
  }
  return byClient.size === targets.length ? targets : [...byClient.values()];
}

export class OutgoingQueue {
  private readonly sql: ReturnType<typeof statements>;
  private readonly enqueueAll: (targets: Target[], packet: StoredPacket) => void;
  private droppedTotal = 0;

  constructor(
    db: Database,
    private readonly maxQueued: number,
  ) {
    const sql = (this.sql = statements(db));
    this.enqueueAll = db.transaction((targets: Target[], packet: StoredPacket) => {
      const cmd = String(packet.cmd ?? "publish");
      const brokerId = (packet.brokerId ?? null) as Id;
      const brokerCounter = (packet.brokerCounter ?? null) as Id;
      // One encoding per variant (QoS, retain) the subscriptions call for, usually one in all.
      const encoded = new Map<string, ReturnType<typeof encodePacket>>();
      for (const target of targets) {
        const clientId = target.clientId;
        const variant = forTarget(packet, target);
        const key = `${variant.qos}:${variant.retain}`;
        let e = encoded.get(key);
        if (!e) encoded.set(key, (e = encodePacket(variant, "messageId")));
        sql.insert.run(clientId, cmd, brokerId, brokerCounter, e.payload, e.meta);
        const queued = sql.queued.get(clientId)?.n ?? 0;
        if (queued > this.maxQueued) this.droppedTotal += sql.dropOldest.run(clientId, queued - this.maxQueued).changes;
      }
    });
  }

  /** Publishes dropped because a client's queue was full, since this queue was opened. */
  get dropped(): number {
    return this.droppedTotal;
  }

  /**
   * Queues one copy of the packet per client, however many of its filters matched: at the highest QoS
   * among them, retained only if one of them keeps the flag as published (MQTT 5 retain-as-published).
   */
  enqueue(targets: Target[], packet: object): void {
    // A fresh aedes Packet, as aedes-persistence stores it: no message id until it is sent.
    this.enqueueAll(onePerClient(targets), new Packet(packet));
  }

  /**
   * A queued packet is about to be sent with a message id (`packet` comes from this queue, so it has the
   * broker id and counter it was queued with), or a publish became a pubrel (same message id, no broker id).
   */
  update(clientId: string, packet: QueuePacket): void {
    if (packet.cmd === "pubrel") return this.release(clientId, packet);
    const brokerId = (packet.brokerId ?? null) as Id;
    const sameOrigin = this.sql.byOrigin.get(clientId, brokerId, (packet.brokerCounter ?? null) as Id);
    const messageId = packet.messageId ?? null;
    const replaced = messageId === null ? null : this.sql.byMessageIdElsewhere.get(clientId, messageId, brokerId);
    if (sameOrigin && (!replaced || sameOrigin.seq < replaced.seq)) {
      this.sql.setMessageId.run(messageId, sameOrigin.seq);
    } else if (replaced) {
      const { payload, meta } = encodePacket(packet, "messageId");
      this.sql.replace.run(String(packet.cmd ?? "publish"), brokerId, (packet.brokerCounter ?? null) as Id, messageId, payload, meta, replaced.seq);
    } else {
      throw new Error("no such packet");
    }
  }

  /**
   * [MQTT-4.3.3-1] A PUBREL takes the place of the PUBLISH (or of the PUBREL, when PUBREC came again)
   * with its packet identifier. It has no broker id or counter, so it is never matched by those, as
   * aedes-persistence matches it: there, an earlier PUBREL still awaiting its PUBCOMP has the same
   * (absent) origin and is taken instead; it gets the new identifier, the PUBLISH stays queued with
   * its own, and is sent again (DUP 1) at the next resume although the client completed it.
   */
  private release(clientId: string, packet: QueuePacket): void {
    const row = typeof packet.messageId === "number" ? this.sql.byMessageId.get(clientId, packet.messageId) : null;
    if (!row) throw new Error("no such packet");
    const { payload, meta } = encodePacket(packet, "messageId");
    this.sql.replace.run("pubrel", null, null, packet.messageId!, payload, meta, row.seq);
  }

  /**
   * Removes and returns the first packet with the message id (a PUBACK or PUBCOMP came). A packet without
   * one (aedes decided not to send it) is found by the broker id and counter it was queued with.
   */
  clear(clientId: string, packet: QueuePacket | undefined): StoredPacket | undefined {
    const messageId = packet?.messageId;
    let row: Row | null = null;
    if (typeof messageId === "number") row = this.sql.byMessageId.get(clientId, messageId);
    else if (packet?.brokerId !== undefined && packet.brokerCounter !== undefined) {
      row = this.sql.byOriginRow.get(clientId, packet.brokerId, packet.brokerCounter);
    }
    if (!row) return undefined;
    this.sql.remove.run(row.seq);
    return toPacket(row);
  }

  /** The packet identifiers of the client's packets sent and not yet acknowledged (PUBLISH or PUBREL). */
  idsInUse(clientId: string): number[] {
    return this.sql.idsInUse.all(clientId).map((row) => row.message_id);
  }

  /** The client's queue as it is now (entries queued later are not included), read in pages. */
  stream(clientId: string): Generator<StoredPacket> {
    const until = this.sql.last.get(clientId)?.seq ?? 0;
    return this.read(clientId, until);
  }

  private *read(clientId: string, until: number): Generator<StoredPacket> {
    for (const row of pages((after, limit) => this.sql.page.all(clientId, after, until, limit), 0, (r) => r.seq)) yield toPacket(row);
  }
}

/**
 * The copy a subscription gets: at most the QoS it was granted [MQTT-3.8.4-6], and with RETAIN 0, since it
 * is delivered because it matched an established subscription [MQTT-3.3.1-9]. A target without a QoS is a
 * publish aimed at one client: queued as it is.
 */
function forTarget(packet: StoredPacket, target: Target): StoredPacket {
  if (target.qos === undefined) return packet;
  const qos = Math.min(Number(packet.qos ?? 0), target.qos);
  const retain = target.rap ? packet.retain : false;
  return qos === packet.qos && retain === packet.retain ? packet : { ...packet, qos, retain };
}

function toPacket(row: Row): StoredPacket {
  const packet = decodePacket(row.payload, row.meta);
  packet.messageId = row.message_id ?? undefined;
  return packet;
}
