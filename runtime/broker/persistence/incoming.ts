/**
 * QoS 2 publishes received from clients, kept from PUBLISH until PUBREL so a
 * resent PUBLISH is recognised and not delivered twice [MQTT-4.3.3-2].
 */
import type { Database } from "bun:sqlite";
import AedesPacket from "aedes-packet";
import { decodePacket, encodePacket, type StoredPacket } from "./codec";

const Packet = AedesPacket as unknown as new (original: object) => StoredPacket;

type Bytes = Uint8Array | string | null;

function statements(db: Database) {
  return {
    put: db.query<void, [string, number, Bytes, string]>("INSERT OR REPLACE INTO incoming (client_id, message_id, payload, meta) VALUES (?, ?, ?, ?)"),
    get: db.query<{ payload: Bytes; meta: string }, [string, number]>("SELECT payload, meta FROM incoming WHERE client_id = ? AND message_id = ?"),
    remove: db.query<void, [string, number]>("DELETE FROM incoming WHERE client_id = ? AND message_id = ?"),
    clean: db.query<void, [string]>("DELETE FROM incoming WHERE client_id = ?"),
  };
}

export class IncomingStore {
  private readonly sql: ReturnType<typeof statements>;

  constructor(db: Database) {
    this.sql = statements(db);
  }

  store(clientId: string, packet: { messageId?: number }): void {
    const stored = new Packet(packet);
    stored.messageId = packet.messageId;
    const { payload, meta } = encodePacket(stored);
    this.sql.put.run(clientId, packet.messageId!, payload, meta);
  }

  get(clientId: string, messageId: number): StoredPacket {
    const row = this.sql.get.get(clientId, messageId);
    if (!row) throw new Error("no such packet");
    return decodePacket(row.payload, row.meta);
  }

  remove(clientId: string, messageId: number): void {
    if (this.sql.remove.run(clientId, messageId).changes === 0) throw new Error("no such packet");
  }

  /** The session ended (clean session): its QoS 2 dedup entries go with it [MQTT-3.1.2-6]. */
  clean(clientId: string): void {
    this.sql.clean.run(clientId);
  }
}
