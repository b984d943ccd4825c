/**
 * Read-only access, from the main thread, to each service's event log (its
 * outbox table). WAL lets these reads run beside the service's own writer.
 * Used to catch a subscriber up on what it missed while it was down.
 */
import { Database, type Statement } from "bun:sqlite";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { CommittedEvent } from "../protocol";

export class EventLogs {
  private readonly open = new Map<string, { db: Database; after: Statement }>();

  constructor(private readonly dataDir: string) {}

  /** Events of `service` after `afterSeq`, in commit order (empty if it has no log). */
  read(service: string, afterSeq: number, limit = 500): CommittedEvent[] {
    const log = this.get(service);
    if (!log) return [];
    const rows = log.after.all(afterSeq, limit) as Array<Omit<CommittedEvent, "data"> & { data: string }>;
    return rows.map((r) => ({ ...r, data: JSON.parse(r.data) as unknown }));
  }

  close(): void {
    for (const { db } of this.open.values()) db.close();
    this.open.clear();
  }

  private get(service: string) {
    let log = this.open.get(service);
    if (log) return log;
    const file = join(this.dataDir, `${service}.sqlite`);
    if (!existsSync(file)) return null;
    const db = new Database(file, { readonly: true, strict: true });
    try {
      const after = db.query("SELECT seq, id, type, time, data FROM _plinth_outbox WHERE seq > ? ORDER BY seq LIMIT ?");
      log = { db, after };
    } catch {
      db.close();
      return null; // no outbox table yet
    }
    this.open.set(service, log);
    return log;
  }
}
