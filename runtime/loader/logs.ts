/**
 * Read-only access, from the main thread, to each service's event log (its
 * outbox table) and its generation (storage/generation.ts). WAL lets these
 * reads run beside the service's own writer. Used to catch a subscriber up on
 * what it missed while it was down.
 */
import { Database, type Statement } from "bun:sqlite";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../log";
import type { CommittedEvent } from "../protocol";
import { logRecordFile, readLogRecord, type LogGeneration } from "../storage/generation";

/**
 * Where subscribers catch up from: each source service's event log and its generation. EventLogs
 * reads them from this node's SQLite files.
 */
export interface EventLogSource {
  /** The highest seq in the service's log (0: none). */
  head(service: string): number;
  /** Events after `afterSeq`, oldest first. */
  read(service: string, afterSeq: number, limit?: number): CommittedEvent[];
  /** The current generation of the service's log (null: it keeps no record yet). */
  generation(service: string): LogGeneration | null;
  /** Reads the generation again: the new one when it changed, else null. */
  refresh(service: string): LogGeneration | null;
  close(): void;
}

export class EventLogs implements EventLogSource {
  private readonly open = new Map<string, { db: Database; after: Statement; head: Statement }>();
  private readonly generations = new Map<string, LogGeneration | null>();

  private readonly unreadable = new Set<string>();

  constructor(
    private readonly dataDir: string,
    private readonly log: Pick<Logger, "error">,
  ) {}

  /** The current generation of `service`'s log (null: it keeps no record yet). */
  generation(service: string): LogGeneration | null {
    let generation = this.generations.get(service);
    if (generation === undefined) {
      const record = readLogRecord(logRecordFile(this.dataDir, service));
      generation = record && { id: record.generation, start: record.start };
      this.generations.set(service, generation);
    }
    return generation;
  }

  /** Reads the generation again (the service's worker opened its log): the new one when it changed, else null. */
  refresh(service: string): LogGeneration | null {
    const before = this.generations.get(service);
    this.generations.delete(service);
    const after = this.generation(service);
    return after && before !== undefined && before?.id !== after.id ? after : null;
  }

  /** The highest sequence number in `service`'s log (0: none). */
  head(service: string): number {
    return this.reading(service, 0, (log) => (log.head.get() as { max: number }).max);
  }

  /** Events of `service` after `afterSeq`, in commit order (empty if it has no log). */
  read(service: string, afterSeq: number, limit = 500): CommittedEvent[] {
    return this.reading(service, [], (log) => {
      const rows = log.after.all(afterSeq, limit) as Array<Omit<CommittedEvent, "data"> & { data: string }>;
      return rows.map((r) => ({ ...r, data: JSON.parse(r.data) as unknown }));
    });
  }

  /**
   * A log that cannot be read (a damaged file: its service fails at load on its own) reads as none,
   * logged once: it must not stop the catch-up of the other sources, nor the platform's start.
   */
  private reading<T>(service: string, none: T, read: (log: { after: Statement; head: Statement }) => T): T {
    try {
      const log = this.get(service);
      return log ? read(log) : none;
    } catch (err) {
      if (!this.unreadable.has(service)) this.log.error("a service's event log cannot be read", { service, error: (err as Error).message });
      this.unreadable.add(service);
      return none;
    }
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
      const head = db.query("SELECT coalesce(max(seq), 0) AS max FROM _plinth_outbox");
      log = { db, after, head };
    } catch {
      db.close();
      return null; // no outbox table yet
    }
    this.open.set(service, log);
    return log;
  }
}
