/**
 * Group commit for the broker's database: what the store writes while the event loop runs one round
 * (the packets of every socket read in that round) goes into one transaction, committed once the
 * round's I/O is handled; every caller's promise settles after that COMMIT. aedes answers a client
 * (PUBACK, PUBREC, PUBCOMP, SUBACK, CONNACK) only when the store's promise resolves, so nothing is
 * acknowledged before it is committed, and a burst of publishes costs one commit instead of one each.
 *
 * A write runs at once, synchronously, inside the open transaction: a read that follows it (on this,
 * the only connection) sees it. A write made of several statements is its own savepoint
 * (`db.transaction` nests), so its failure undoes it alone. A failed COMMIT, or a statement error
 * that made SQLite roll the whole transaction back, rejects every write of that group.
 *
 * The store's health (storage/faults.ts, by the database's file: /health reads it) hears each
 * storage fault (disk full, read-only, I/O error) of a write or a commit, and each group committed.
 */
import type { Database } from "bun:sqlite";
import { storeHealth, type StorageHealth } from "../../storage/faults";

const ROLLED_BACK = () => new Error("broker store: the transaction was rolled back");

interface Waiting {
  resolve(): void;
  reject(err: Error): void;
}

export class GroupCommit {
  private open = false;
  private waiting: Waiting[] = [];
  private readonly commitSoon = () => this.commit();

  constructor(
    private readonly db: Database,
    readonly health: StorageHealth = storeHealth(db.filename),
  ) {}

  /**
   * Runs `write` in the current group (opening one); resolves with its value once the group is committed.
   * Never throws: what fails (the database closed, the write) rejects.
   */
  write<T>(write: () => T): Promise<T> {
    let value: T;
    try {
      this.begin();
      value = write();
    } catch (err) {
      this.health.failed(err);
      this.failIfRolledBack();
      return Promise.reject(err);
    }
    if (this.failIfRolledBack()) return Promise.reject(ROLLED_BACK());
    return new Promise<T>((resolve, reject) => this.waiting.push({ resolve: () => resolve(value), reject }));
  }

  /**
   * Runs `read`; resolves with its value once everything written so far is committed (at once when
   * nothing is pending): what a read returns is not acted on (answered to a client) before the writes
   * it saw are durable. Never throws: what fails rejects.
   */
  read<T>(read: () => T): Promise<T> {
    let value: T;
    try {
      value = read();
    } catch (err) {
      return Promise.reject(err);
    }
    if (!this.open) return Promise.resolve(value);
    return new Promise<T>((resolve, reject) => this.waiting.push({ resolve: () => resolve(value), reject }));
  }

  /** Commits the open group now (before closing the database). */
  flush(): void {
    if (this.open) this.commit();
  }

  private begin(): void {
    if (this.open) return;
    this.db.exec("BEGIN");
    this.open = true;
    setImmediate(this.commitSoon);
  }

  private commit(): void {
    if (!this.open) return;
    this.open = false;
    const waiting = this.waiting;
    this.waiting = [];
    let failure: Error | null = null;
    try {
      if (this.db.inTransaction) this.db.exec("COMMIT");
      else failure = ROLLED_BACK();
    } catch (err) {
      failure = err as Error;
      try {
        if (this.db.inTransaction) this.db.exec("ROLLBACK");
      } catch {
        // SQLite rolls back on its own when it cannot go on; the group has failed either way.
      }
    }
    if (failure) this.health.failed(failure);
    else this.health.committed();
    for (const w of waiting) failure ? w.reject(failure) : w.resolve();
  }

  /** A statement error that rolled the whole transaction back (SQLITE_FULL, IOERR, ...): that group failed. */
  private failIfRolledBack(): boolean {
    if (!this.open || this.db.inTransaction) return false;
    this.commit();
    return true;
  }
}
