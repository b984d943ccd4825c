/**
 * Will messages of connected clients, marked with the broker that holds the
 * connection. After a crash they are still here, under the dead broker's id,
 * and aedes publishes them (its periodic will sweep streams the wills of
 * brokers it has not heard from).
 */
import type { Database } from "bun:sqlite";
import { decodePacket, encodePacket, type StoredPacket } from "./codec";
import { pages } from "./paging";

type Bytes = Uint8Array | string | null;

function statements(db: Database) {
  return {
    put: db.query<void, [string, string | null, Bytes, string]>("INSERT OR REPLACE INTO wills (client_id, broker_id, payload, meta) VALUES (?, ?, ?, ?)"),
    get: db.query<{ payload: Bytes; meta: string }, [string]>("SELECT payload, meta FROM wills WHERE client_id = ?"),
    remove: db.query<void, [string]>("DELETE FROM wills WHERE client_id = ?"),
    page: db.query<{ client_id: string; broker_id: string | null; payload: Bytes; meta: string }, [string, number]>(
      "SELECT client_id, broker_id, payload, meta FROM wills WHERE client_id > ? ORDER BY client_id LIMIT ?",
    ),
  };
}

export class WillStore {
  private readonly sql: ReturnType<typeof statements>;

  constructor(db: Database) {
    this.sql = statements(db);
  }

  /** Stores the will as given, which (as in aedes-persistence) is marked with `brokerId` and `clientId`. */
  put(clientId: string, brokerId: string, will: Record<string, unknown>): void {
    will.brokerId = brokerId;
    will.clientId = clientId;
    const { payload, meta } = encodePacket(will);
    this.sql.put.run(clientId, brokerId, payload, meta);
  }

  get(clientId: string): StoredPacket | undefined {
    const row = this.sql.get.get(clientId);
    return row ? decodePacket(row.payload, row.meta) : undefined;
  }

  /** Removes the client's will and returns it. */
  remove(clientId: string): StoredPacket | undefined {
    const will = this.get(clientId);
    if (will) this.sql.remove.run(clientId);
    return will;
  }

  /** Wills held for brokers other than the ones named. */
  *notOf(brokers: Record<string, unknown>): Generator<StoredPacket> {
    for (const row of pages((after, limit) => this.sql.page.all(after, limit), "", (r) => r.client_id)) {
      if (row.broker_id !== null && Object.hasOwn(brokers, row.broker_id)) continue;
      yield decodePacket(row.payload, row.meta);
    }
  }
}
