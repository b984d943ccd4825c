/**
 * Runs each handler as a unit of work on the service's database, so that a
 * state change and the events describing it commit together (transactional
 * outbox, see outbox.ts).
 *
 * - A synchronous handler runs inside one transaction: the handler, then the
 *   outbox rows for its events; rolled back (and no events) if it throws.
 * - Group commit: consecutive synchronous units share one transaction, each in
 *   its own savepoint (a failing one rolls back alone), committed at the end of
 *   the message that brought them or once the group is `groupMs` old. One
 *   commit writes each touched page once instead of once per unit (25 µs → 9 µs
 *   per write here). A unit's result may leave the worker only once committed:
 *   its reply goes through `whenCommitted`.
 * - An async handler cannot hold SQLite's single write transaction across its
 *   awaits without stalling every other request to the service, so it runs
 *   outside one. `ctx.tx(fn)` runs `fn` in a transaction with the events it
 *   emits, published as soon as it commits; events emitted outside `ctx.tx` are
 *   committed when the handler returns successfully.
 * - `transaction: false` makes even a synchronous handler run the async way.
 * - Storage faults (disk full, read-only, I/O error: storage/faults.ts) are recorded in the
 *   service's StorageHealth; a commit that wrote something tells it the store takes writes again.
 *   Both checks run only on the error path or while the store is degraded.
 */
import type { Database, Statement } from "bun:sqlite";
import type { CommittedEvent, EmitRequest } from "../protocol";
import type { Scope } from "../sdk/context";
import { StorageHealth, storageFault, type StorageFault } from "../storage/faults";
import type { Outbox } from "./outbox";

export interface Done<T> {
  value: T;
  events: CommittedEvent[];
}

export interface UnitOptions {
  /** Run inside one implicit transaction (synchronous handlers only). */
  transaction: boolean;
  /**
   * The runtime's own writes for the unit (a subscription's cursor), run once the handler has
   * succeeded, in the transaction that commits its events: both or neither.
   */
  bookkeeping?: () => void;
}

const AsyncFunction = (async () => {}).constructor;

export function isAsync(fn: unknown): boolean {
  return fn instanceof AsyncFunction;
}

interface Held {
  ok: () => void;
  fail: (err: unknown) => void;
}

export class UnitOfWork {
  // Prepared once: a handler's transaction costs no SQL parsing.
  private readonly begin: Statement;
  private readonly commitStmt: Statement;
  private readonly rollbackStmt: Statement;
  private readonly savepoint: Statement;
  private readonly release: Statement;
  private readonly rollbackTo: Statement;
  private readonly totalChanges: Statement;
  /** SQLite's count of rows changed on this connection when the last storage fault was seen. */
  private changesAtFault = 0;
  /** The open group: committed units whose replies wait for its COMMIT. */
  private group: { since: number; held: Held[] } | null = null;
  /** A synchronous handler is running inside its savepoint: ctx.tx nests in it. */
  private inHandler = false;

  constructor(
    private readonly db: Database,
    private readonly outbox: Outbox,
    /** Events committed by `ctx.tx` inside an async handler, to publish at once. */
    private readonly onCommitted: (events: CommittedEvent[]) => void,
    /** A group commits once it is this old (or at the end of the message, whichever comes first). */
    private readonly groupMs = 0.2,
    /** After each group commit (the worker sends the replies it released). */
    private readonly onSettled: () => void = () => {},
    /** The store's health: told of storage faults, and of writes that commit while it is degraded. */
    readonly health: StorageHealth = new StorageHealth(),
  ) {
    this.begin = db.query("BEGIN");
    this.commitStmt = db.query("COMMIT");
    this.rollbackStmt = db.query("ROLLBACK");
    this.savepoint = db.query("SAVEPOINT plinth_unit");
    this.release = db.query("RELEASE plinth_unit");
    this.rollbackTo = db.query("ROLLBACK TO plinth_unit");
    this.totalChanges = db.query("SELECT total_changes() AS n");
  }

  /** The storage fault `err` is (recorded in the store's health), or null for any other error. */
  failed(err: unknown): StorageFault | null {
    const fault = this.health.failed(err);
    if (fault) this.changesAtFault = this.changes();
    return fault;
  }

  /**
   * A commit succeeded (a group, a ctx.tx, written acks): if the store is degraded and rows changed
   * since its last fault, a write went through. Costs one property read while the store is healthy.
   */
  committed(): void {
    if (this.health.fault === null) return;
    const changes = this.changes();
    if (changes === this.changesAtFault) return; // read-only work commits even on a full disk
    this.changesAtFault = changes;
    this.health.committed();
  }

  private changes(): number {
    try {
      return (this.totalChanges.get() as { n: number }).n;
    } catch {
      return this.changesAtFault;
    }
  }

  /** Runs `ok` once everything run() has returned so far is committed (at once if it is), `fail` if that commit failed. */
  whenCommitted(ok: () => void, fail: (err: unknown) => void): void {
    if (this.group) this.group.held.push({ ok, fail });
    else ok();
  }

  /** Commits the open group, if any, and releases the replies waiting for it; returns the commit's error when it failed. */
  settle(): unknown {
    const group = this.group;
    if (!group) return undefined;
    this.group = null;
    let error: unknown;
    try {
      this.commitStmt.run();
    } catch (err) {
      error = err;
      this.failed(err);
      try {
        if (this.db.inTransaction) this.rollbackStmt.run();
      } catch {
        // SQLite rolls back on its own when it cannot go on; the group has failed either way.
      }
    }
    if (error === undefined) this.committed();
    for (const held of group.held) {
      if (error === undefined) held.ok();
      else held.fail(error);
    }
    this.onSettled();
    return error;
  }

  /**
   * Runs `handler`, with its value and the events it committed. A synchronous handler in a
   * transaction completes synchronously (no promise on the hot path), its commit pending in the
   * group until `whenCommitted` says so; otherwise a promise. A synchronous handler that throws throws.
   */
  run<T>(handler: (scope: Scope) => T | Promise<T>, options: UnitOptions): Done<T> | Promise<Done<T>> {
    let sink: EmitRequest[] = [];
    const scope: Scope = {
      emit: (event) => sink.push(event),
      tx: <R>(fn: () => R): R => {
        // Inside a synchronous handler: a savepoint; its events commit with the handler's.
        if (this.inHandler) return this.db.transaction(fn)();
        this.settle();
        const outer = sink;
        sink = [];
        try {
          let committed: CommittedEvent[] = [];
          const value = this.db.transaction(() => {
            const result = fn();
            committed = this.outbox.add(sink);
            return result;
          })();
          this.committed();
          if (committed.length > 0) this.onCommitted(committed);
          return value;
        } finally {
          sink = outer;
        }
      },
    };

    if (!options.transaction) {
      // Its writes autocommit as they happen: none may join a group that could still fail.
      this.settle();
      try {
        return Promise.resolve(handler(scope)).then((value) => ({ value, events: this.commitLoose(sink, options.bookkeeping) }));
      } catch (err) {
        return Promise.reject(err);
      }
    }

    if (!this.group) {
      this.begin.run();
      try {
        this.outbox.flushSent(); // the acks held since the last group ride along with this one
      } catch (err) {
        // Those rows stay unsent (published again at the next relay). If SQLite rolled back more
        // than the acks' savepoint, the group starts afresh.
        this.failed(err);
        if (!this.db.inTransaction) this.begin.run();
      }
      this.group = { since: performance.now(), held: [] };
      // Settled at the end of the message by the worker; this catches units run from a later microtask.
      queueMicrotask(() => this.settle());
    }
    this.savepoint.run();
    this.inHandler = true;
    let result: T | Promise<T>;
    let events: CommittedEvent[];
    try {
      result = handler(scope);
      if (!(result instanceof Promise)) options.bookkeeping?.();
      events = this.outbox.add(sink);
      this.release.run();
    } catch (err) {
      this.undo(err);
      throw err;
    } finally {
      this.inHandler = false;
    }
    if (!(result instanceof Promise)) {
      // Its own commit, when the group is old enough: if that fails, so did this unit.
      if (performance.now() - this.group.since >= this.groupMs) {
        const failed = this.settle();
        if (failed !== undefined) throw failed;
      }
      return { value: result, events };
    }
    // A plain function that returned a promise: what it did before its first await commits now.
    sink = [];
    let failed: unknown;
    this.whenCommitted(
      () => events.length > 0 && this.onCommitted(events),
      (err) => (failed = err),
    );
    this.settle();
    if (failed !== undefined) {
      result.catch(() => {}); // its own outcome no longer matters: the commit of its first part failed
      return Promise.reject(failed);
    }
    return result.then((value) => ({ value, events: this.commitLoose(sink, options.bookkeeping) }));
  }

  /**
   * Undoes the failed unit alone; if SQLite already rolled back the whole group, the group fails
   * (with the unit's storage fault when that is what rolled it back: the others lost their commit to it).
   */
  private undo(err: unknown): void {
    if (this.db.inTransaction) {
      this.rollbackTo.run();
      this.release.run();
      return;
    }
    const group = this.group;
    this.group = null;
    const lost = storageFault(err) ? err : new Error("the transaction was rolled back by SQLite");
    for (const held of group?.held ?? []) held.fail(lost);
  }

  /** Events emitted outside any transaction (and the unit's bookkeeping), committed together once the handler succeeded. */
  private commitLoose(events: EmitRequest[], bookkeeping?: () => void): CommittedEvent[] {
    if (events.length === 0 && !bookkeeping) return [];
    this.settle();
    const committed = this.db.transaction(() => {
      bookkeeping?.();
      return this.outbox.add(events);
    })();
    this.committed();
    return committed;
  }
}
