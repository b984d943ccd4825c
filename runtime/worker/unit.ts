/**
 * Runs each handler as a unit of work on the service's database, so that a
 * state change and the events describing it commit together (transactional
 * outbox, see outbox.ts).
 *
 * - A synchronous handler runs inside one transaction: BEGIN, the handler,
 *   the outbox rows for its events, COMMIT; ROLLBACK (and no events) if it throws.
 * - An async handler cannot hold SQLite's single write transaction across its
 *   awaits without stalling every other request to the service, so it runs
 *   outside one. `ctx.tx(fn)` runs `fn` in a transaction with the events it
 *   emits, published as soon as it commits; events emitted outside `ctx.tx` are
 *   committed when the handler returns successfully.
 * - `transaction: false` makes even a synchronous handler run the async way.
 */
import type { Database, Statement } from "bun:sqlite";
import type { CommittedEvent, EmitRequest } from "../protocol";
import type { Scope } from "../sdk/context";
import type { Outbox } from "./outbox";

export interface Done<T> {
  value: T;
  events: CommittedEvent[];
}

export interface UnitOptions {
  /** Run inside one implicit transaction (synchronous handlers only). */
  transaction: boolean;
}

const AsyncFunction = (async () => {}).constructor;

export function isAsync(fn: unknown): boolean {
  return fn instanceof AsyncFunction;
}

export class UnitOfWork {
  // Prepared once: a handler's transaction costs no SQL parsing.
  private readonly begin: Statement;
  private readonly commitStmt: Statement;
  private readonly rollbackStmt: Statement;

  constructor(
    private readonly db: Database,
    private readonly outbox: Outbox,
    /** Events committed by `ctx.tx` inside an async handler, to publish at once. */
    private readonly onCommitted: (events: CommittedEvent[]) => void,
  ) {
    this.begin = db.query("BEGIN");
    this.commitStmt = db.query("COMMIT");
    this.rollbackStmt = db.query("ROLLBACK");
  }

  private rollback(): void {
    if (this.db.inTransaction) this.rollbackStmt.run();
  }

  /**
   * Runs `handler`, with its value and the events committed when it finished. A synchronous
   * handler in a transaction completes synchronously (no promise on the hot path); otherwise a
   * promise. A synchronous handler that throws throws.
   */
  run<T>(handler: (scope: Scope) => T | Promise<T>, options: UnitOptions): Done<T> | Promise<Done<T>> {
    let sink: EmitRequest[] = [];
    const scope: Scope = {
      emit: (event) => sink.push(event),
      tx: <R>(fn: () => R): R => {
        // Inside the implicit transaction: a savepoint; its events commit with the handler's.
        if (this.db.inTransaction) return this.db.transaction(fn)();
        const outer = sink;
        sink = [];
        try {
          let committed: CommittedEvent[] = [];
          const value = this.db.transaction(() => {
            const result = fn();
            committed = this.outbox.add(sink);
            return result;
          })();
          if (committed.length > 0) this.onCommitted(committed);
          return value;
        } finally {
          sink = outer;
        }
      },
    };

    if (options.transaction) {
      this.begin.run();
      let result: T | Promise<T>;
      try {
        result = handler(scope);
        if (!(result instanceof Promise)) return { value: result, events: this.commit(sink) };
      } catch (err) {
        this.rollback();
        throw err;
      }
      // A plain function that returned a promise: commit what it did before its first await.
      const prefix = this.commit(sink);
      sink = [];
      if (prefix.length > 0) this.onCommitted(prefix);
      return result.then((value) => ({ value, events: this.commitLoose(sink) }));
    }

    try {
      return Promise.resolve(handler(scope)).then((value) => ({ value, events: this.commitLoose(sink) }));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Events emitted outside any transaction, committed on their own once the handler succeeded. */
  private commitLoose(events: EmitRequest[]): CommittedEvent[] {
    return events.length > 0 ? this.db.transaction(() => this.outbox.add(events))() : [];
  }

  private commit(events: EmitRequest[]): CommittedEvent[] {
    try {
      const written = this.outbox.add(events);
      this.commitStmt.run();
      return written;
    } catch (err) {
      this.rollback();
      throw err;
    }
  }
}
