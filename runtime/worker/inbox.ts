/**
 * The subscriber's side of durable delivery, in its own database: how far each
 * subscription has handled each source service's event log (advanced in the
 * transaction that commits the handler's events: a synchronous handler's own,
 * or for an async one the transaction of the events it emitted outside ctx.tx;
 * so a redelivered event is skipped), and the dead letters it gave up on.
 */
import type { Database, Statement } from "bun:sqlite";
import type { CloudEvent } from "../protocol";

export interface Cursor {
  subscription: string;
  source: string;
  seq: number;
  /** The generation of the source's log `seq` counts in (null: recorded before logs had generations). */
  generation: string | null;
}

export interface DeadLetter {
  id: number;
  subscription: string;
  topic: string;
  source: string;
  seq: number;
  event: CloudEvent;
  error: string;
  attempts: number;
  failed_at: string;
}

export class Inbox {
  private readonly read: Statement;
  private readonly write: Statement;

  constructor(private readonly db: Database) {
    db.exec(`CREATE TABLE IF NOT EXISTS _plinth_cursors (
      subscription TEXT NOT NULL,
      source TEXT NOT NULL,
      seq INTEGER NOT NULL,
      PRIMARY KEY (subscription, source)
    )`);
    db.exec(`CREATE TABLE IF NOT EXISTS _plinth_dead_letters (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      subscription TEXT NOT NULL,
      topic TEXT NOT NULL,
      source TEXT NOT NULL,
      seq INTEGER NOT NULL,
      event TEXT NOT NULL,
      error TEXT NOT NULL,
      attempts INTEGER NOT NULL,
      failed_at TEXT NOT NULL
    )`);
    const columns = db.query("SELECT name FROM pragma_table_info('_plinth_cursors')").all() as Array<{ name: string }>;
    if (!columns.some((c) => c.name === "generation")) db.exec("ALTER TABLE _plinth_cursors ADD COLUMN generation TEXT");
    this.read = db.query("SELECT seq, generation FROM _plinth_cursors WHERE subscription = ? AND source = ?");
    // A new generation of the source's log starts the cursor afresh; within one, it only moves forward.
    this.write = db.query(
      `INSERT INTO _plinth_cursors (subscription, source, seq, generation) VALUES (?1, ?2, ?3, ?4)
       ON CONFLICT (subscription, source) DO UPDATE SET
         seq = CASE WHEN ?4 IS NOT NULL AND generation IS NOT NULL AND generation <> ?4 THEN ?3 ELSE max(seq, ?3) END,
         generation = coalesce(?4, generation)`,
    );
  }

  cursors(): Cursor[] {
    return this.db.query("SELECT subscription, source, seq, generation FROM _plinth_cursors").all() as Cursor[];
  }

  /** Has this subscription already handled event `seq` of `source` (of that generation of its log, when known)? */
  handled(subscription: string, source: string, seq: number, generation?: string): boolean {
    const row = this.read.get(subscription, source) as { seq: number; generation: string | null } | null;
    if (row === null) return false;
    if (generation !== undefined && row.generation !== null && row.generation !== generation) return false;
    return row.seq >= seq;
  }

  advance(subscription: string, source: string, seq: number, generation?: string): void {
    this.write.run(subscription, source, seq, generation ?? null);
  }

  /** Stores a dead letter and moves the cursor past it, atomically. */
  bury(letter: Omit<DeadLetter, "id" | "failed_at"> & { generation?: string }): void {
    this.db.transaction(() => {
      this.db
        .query(
          "INSERT INTO _plinth_dead_letters (subscription, topic, source, seq, event, error, attempts, failed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .run(letter.subscription, letter.topic, letter.source, letter.seq, JSON.stringify(letter.event), letter.error, letter.attempts, new Date().toISOString());
      this.advance(letter.subscription, letter.source, letter.seq, letter.generation);
    })();
  }

  deadLetters(): DeadLetter[] {
    const rows = this.db.query("SELECT * FROM _plinth_dead_letters ORDER BY id").all() as Array<Omit<DeadLetter, "event"> & { event: string }>;
    return rows.map((r) => ({ ...r, event: JSON.parse(r.event) as CloudEvent }));
  }

  deadLetter(id: number): DeadLetter | null {
    const row = this.db.query("SELECT * FROM _plinth_dead_letters WHERE id = ?").get(id) as (Omit<DeadLetter, "event"> & { event: string }) | null;
    return row ? { ...row, event: JSON.parse(row.event) as CloudEvent } : null;
  }

  forget(id: number): void {
    this.db.query("DELETE FROM _plinth_dead_letters WHERE id = ?").run(id);
  }
}
