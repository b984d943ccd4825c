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
    this.read = db.query("SELECT seq FROM _plinth_cursors WHERE subscription = ? AND source = ?");
    this.write = db.query(
      `INSERT INTO _plinth_cursors (subscription, source, seq) VALUES (?, ?, ?)
       ON CONFLICT (subscription, source) DO UPDATE SET seq = max(seq, excluded.seq)`,
    );
  }

  cursors(): Cursor[] {
    return this.db.query("SELECT subscription, source, seq FROM _plinth_cursors").all() as Cursor[];
  }

  /** Has this subscription already handled event `seq` of `source`? */
  handled(subscription: string, source: string, seq: number): boolean {
    const row = this.read.get(subscription, source) as { seq: number } | null;
    return row !== null && row.seq >= seq;
  }

  advance(subscription: string, source: string, seq: number): void {
    this.write.run(subscription, source, seq);
  }

  /** Stores a dead letter and moves the cursor past it, atomically. */
  bury(letter: Omit<DeadLetter, "id" | "failed_at">): void {
    this.db.transaction(() => {
      this.db
        .query(
          "INSERT INTO _plinth_dead_letters (subscription, topic, source, seq, event, error, attempts, failed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .run(letter.subscription, letter.topic, letter.source, letter.seq, JSON.stringify(letter.event), letter.error, letter.attempts, new Date().toISOString());
      this.advance(letter.subscription, letter.source, letter.seq);
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
