/** The unit of work: state changes and their events commit (or roll back) together. */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CommittedEvent } from "../../../runtime/protocol";
import { Outbox } from "../../../runtime/worker/outbox";
import type { Scope } from "../../../runtime/sdk/context";
import { UnitOfWork, isAsync, type Done } from "../../../runtime/worker/unit";
import { StorageHealth } from "../../../runtime/storage/faults";

let db: Database;
let outbox: Outbox;
let unit: UnitOfWork;
let published: CommittedEvent[][];

beforeEach(() => {
  db = new Database(":memory:", { strict: true });
  db.exec("CREATE TABLE items (v TEXT NOT NULL)");
  outbox = new Outbox(db, 100);
  published = [];
  unit = new UnitOfWork(db, outbox, (events) => published.push(events));
});
afterEach(() => {
  unit.settle();
  db.close();
});

let n = 0;
const emit = (scope: Scope, type: string) => scope.emit({ id: `e${++n}`, type, time: "t", data: { type } });
const insert = (v: string) => db.query("INSERT INTO items (v) VALUES (?)").run(v);
const items = () => (db.query("SELECT v FROM items ORDER BY rowid").all() as Array<{ v: string }>).map((r) => r.v);
const outboxTypes = () => (db.query("SELECT type FROM _plinth_outbox ORDER BY seq").all() as Array<{ type: string }>).map((r) => r.type);

describe("synchronous handlers (one implicit transaction)", () => {
  test("writes and events commit together, synchronously", async () => {
    const done = unit.run((s) => {
      insert("a");
      emit(s, "made");
      return 1;
    }, { transaction: true });
    expect(done).not.toBeInstanceOf(Promise);
    const { value, events } = await done;
    expect(value).toBe(1);
    expect(events.map((e) => [e.seq, e.type])).toEqual([[1, "made"]]);
    expect(items()).toEqual(["a"]);
    expect(outboxTypes()).toEqual(["made"]);
    expect(db.inTransaction).toBe(false);
  });

  test("a handler that throws rolls back its writes and emits nothing (synchronously: no promise on this path)", () => {
    const failing = () =>
      unit.run((s) => {
        insert("a");
        emit(s, "made");
        throw new Error("no");
      }, { transaction: true });
    expect(failing).toThrow("no");
    unit.settle();
    expect(items()).toEqual([]);
    expect(outboxTypes()).toEqual([]);
    expect(db.inTransaction).toBe(false);
  });

  test("ctx.tx inside is a savepoint: its events commit with the handler's", async () => {
    const { events } = await unit.run((s) => {
      s.tx(() => {
        insert("a");
        emit(s, "inner");
      });
      emit(s, "outer");
      return null;
    }, { transaction: true });
    expect(events.map((e) => e.type)).toEqual(["inner", "outer"]);
    expect(published).toEqual([]);
  });

  test("a plain function returning a promise: the part before its first await commits, the rest as async", async () => {
    const { events } = await unit.run((s) => {
      insert("before");
      emit(s, "before");
      return Promise.resolve().then(() => {
        emit(s, "after");
        return 1;
      });
    }, { transaction: true });
    expect(published.map((batch) => batch.map((e) => e.type))).toEqual([["before"]]);
    expect(events.map((e) => e.type)).toEqual(["after"]);
    expect(items()).toEqual(["before"]);
  });
});

describe("async handlers (no transaction held across awaits)", () => {
  test("ctx.tx commits writes with their events and publishes them at once", async () => {
    const { events } = await unit.run(async (s) => {
      await Bun.sleep(1);
      s.tx(() => {
        insert("a");
        emit(s, "made");
      });
      expect(published.map((b) => b.map((e) => e.type))).toEqual([["made"]]);
      return null;
    }, { transaction: false });
    expect(events).toEqual([]);
    expect(items()).toEqual(["a"]);
  });

  test("a throw after ctx.tx keeps what it committed (and its published events); loose events are dropped", async () => {
    const failing = unit.run(async (s) => {
      s.tx(() => {
        insert("kept");
        emit(s, "kept");
      });
      emit(s, "loose");
      await Bun.sleep(1);
      throw new Error("later failure");
    }, { transaction: false });
    await expect(failing).rejects.toThrow("later failure");
    expect(items()).toEqual(["kept"]);
    expect(outboxTypes()).toEqual(["kept"]);
    expect(published.flat().map((e) => e.type)).toEqual(["kept"]);
  });

  test("a ctx.tx that throws rolls back its writes and its events", async () => {
    const failing = unit.run(async (s) => {
      s.tx(() => {
        insert("x");
        emit(s, "x");
        throw new Error("inside");
      });
    }, { transaction: false });
    await expect(failing).rejects.toThrow("inside");
    expect(items()).toEqual([]);
    expect(outboxTypes()).toEqual([]);
  });

  test("loose events commit when the handler returns", async () => {
    const { events } = await unit.run(async (s) => {
      await Bun.sleep(1);
      emit(s, "loose");
      return 1;
    }, { transaction: false });
    expect(events.map((e) => e.type)).toEqual(["loose"]);
    expect(outboxTypes()).toEqual(["loose"]);
  });

  test("a slow async handler does not block others", async () => {
    let release!: () => void;
    const slow = unit.run(() => new Promise<number>((resolve) => (release = () => resolve(1))), { transaction: false });
    const quick = await unit.run((s) => {
      insert("quick");
      emit(s, "quick");
      return 2;
    }, { transaction: true });
    expect(quick.value).toBe(2);
    release();
    expect((await slow).value).toBe(1);
  });
});

describe("group commit: synchronous units share one commit", () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "plinth-unit-"));
    file = join(dir, "s.sqlite");
    unit.settle();
    db.close();
    db = new Database(file, { create: true, strict: true });
    db.exec("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; CREATE TABLE items (v TEXT NOT NULL)");
    outbox = new Outbox(db, 100);
    unit = new UnitOfWork(db, outbox, (events) => published.push(events), 1_000);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** What another connection (another process, say) can see: only what is committed. */
  const committed = <T>(sql: string, column: string): T[] => {
    const other = new Database(file, { readonly: true });
    try {
      return (other.query(sql).all() as Array<Record<string, T>>).map((r) => r[column]!);
    } finally {
      other.close();
    }
  };
  const committedItems = () => committed<string>("SELECT v FROM items ORDER BY rowid", "v");

  test("replies wait for the group's commit; nothing is visible outside before it", () => {
    const released: string[] = [];
    for (const v of ["a", "b"]) {
      const done = unit.run((s) => {
        insert(v);
        emit(s, v);
        return v;
      }, { transaction: true }) as Done<string>;
      unit.whenCommitted(() => released.push(done.value), () => released.push("failed"));
    }
    expect(released).toEqual([]);
    expect(committedItems()).toEqual([]);
    unit.settle();
    expect(released).toEqual(["a", "b"]);
    expect(committedItems()).toEqual(["a", "b"]);
    expect(outboxTypes()).toEqual(["a", "b"]);
  });

  test("a unit that throws rolls back alone; the others in its group commit", () => {
    unit.run(() => insert("kept"), { transaction: true });
    expect(() =>
      unit.run((s) => {
        insert("undone");
        emit(s, "undone");
        throw new Error("no");
      }, { transaction: true }),
    ).toThrow("no");
    unit.run(() => insert("kept too"), { transaction: true });
    unit.settle();
    expect(committedItems()).toEqual(["kept", "kept too"]);
    expect(outboxTypes()).toEqual([]);
  });

  test("a failed commit fails every reply of the group and keeps none of its writes or events", () => {
    db.exec("CREATE TABLE parents (id INTEGER PRIMARY KEY); CREATE TABLE children (parent INTEGER REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED)");
    const outcomes: string[] = [];
    unit.run((s) => (insert("a"), emit(s, "a")), { transaction: true });
    unit.whenCommitted(() => outcomes.push("ok"), (err) => outcomes.push(String(err)));
    // Checked only at COMMIT: the whole group fails there.
    unit.run(() => db.query("INSERT INTO children (parent) VALUES (42)").run(), { transaction: true });
    unit.whenCommitted(() => outcomes.push("ok"), (err) => outcomes.push(String(err)));
    unit.settle();
    expect(outcomes).toHaveLength(2);
    expect(outcomes.every((o) => /FOREIGN KEY/.test(o))).toBe(true);
    expect(committedItems()).toEqual([]);
    expect(outboxTypes()).toEqual([]);
    expect(db.inTransaction).toBe(false);
  });

  test("acks held for later are written by the next group's commit, not one of their own; a failed commit loses them and the events stay unsent", () => {
    const committedUnsent = () => committed<number>("SELECT seq FROM _plinth_outbox_state WHERE NOT sent ORDER BY seq", "seq");
    unit.run((s) => emit(s, "a"), { transaction: true });
    unit.run((s) => emit(s, "b"), { transaction: true });
    unit.settle();
    outbox.markSentLater([1]);
    expect(committedUnsent()).toEqual([1, 2]);
    unit.run(() => insert("x"), { transaction: true });
    expect(committedUnsent()).toEqual([1, 2]); // written inside the open group...
    unit.settle();
    expect(committedUnsent()).toEqual([2]); // ...and committed with it

    db.exec("CREATE TABLE parents (id INTEGER PRIMARY KEY); CREATE TABLE children (parent INTEGER REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED)");
    outbox.markSentLater([2]);
    unit.run(() => db.query("INSERT INTO children (parent) VALUES (42)").run(), { transaction: true });
    unit.settle(); // the COMMIT fails (deferred foreign key): the ack goes with it
    expect(committedUnsent()).toEqual([2]);
    outbox.flushSent();
    expect(committedUnsent()).toEqual([2]); // not held any more: published again at the next relay

    outbox.markSentLater([2]);
    outbox.flushSent(); // no transaction open: written on its own
    expect(committedUnsent()).toEqual([]);
  });

  test("a group older than groupMs commits at the next unit; with 0 every unit commits alone", async () => {
    unit = new UnitOfWork(db, outbox, () => {}, 0);
    unit.run(() => insert("a"), { transaction: true });
    expect(db.inTransaction).toBe(false);
    expect(committedItems()).toEqual(["a"]);

    unit = new UnitOfWork(db, outbox, () => {}, 5);
    unit.run(() => insert("b"), { transaction: true });
    // b's group is committed by the settle it queued as a microtask; c opens a new one.
    await new Promise<void>((resolve, reject) => unit.whenCommitted(resolve, reject));
    unit.run(() => insert("c"), { transaction: true });
    expect(committedItems()).toEqual(["a", "b"]);
    const started = performance.now();
    while (performance.now() - started < 6);
    unit.run(() => insert("d"), { transaction: true });
    expect(committedItems()).toEqual(["a", "b", "c", "d"]);
  });

  test("an async handler starts after the open group committed: its own writes never ride on it", async () => {
    unit.run(() => insert("grouped"), { transaction: true });
    const done = unit.run(async () => {
      insert("async");
      return 1;
    }, { transaction: false });
    expect(committedItems()).toEqual(["grouped", "async"]);
    expect((await done).value).toBe(1);
  });
});

test("isAsync tells async functions from plain ones", () => {
  expect(isAsync(async () => 1)).toBe(true);
  expect(isAsync(() => Promise.resolve(1))).toBe(false);
  expect(isAsync(function named() {})).toBe(false);
});

describe("storage faults and the store's health", () => {
  let dir: string;
  let health: StorageHealth;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "plinth-unit-"));
    unit.settle();
    db.close();
    db = new Database(join(dir, "s.sqlite"), { create: true, strict: true });
    db.exec("PRAGMA journal_mode = WAL; CREATE TABLE items (v TEXT NOT NULL)");
    outbox = new Outbox(db, 100);
    // No quiet period, and a clock that moves at each reading: a write after a fault is later than it.
    let now = 0;
    health = new StorageHealth(undefined, 0, () => ++now);
    unit = new UnitOfWork(db, outbox, (events) => published.push(events), 0, () => {}, health);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** Caps the file at the pages it has (SQLite's max_page_count): a write that needs a page fails with SQLITE_FULL. */
  const cap = () => db.exec(`PRAGMA max_page_count = ${(db.query("PRAGMA page_count").get() as { page_count: number }).page_count}`);
  const lift = () => db.exec("PRAGMA max_page_count = 4294967294");
  const big = () => "x".repeat(3_000);

  /** Runs writing units until the full file refuses one; returns what it threw. */
  const fill = (): unknown => {
    for (let i = 0; i < 100; i++) {
      try {
        unit.run(() => insert(big()), { transaction: true });
      } catch (err) {
        return err;
      }
    }
    throw new Error("the capped file never refused a write");
  };

  test("a storage fault is recorded; a later commit that wrote declares the store back, one that only read does not", () => {
    cap();
    const err = fill();
    expect(unit.failed(err)).toMatchObject({ code: "PLT_STORAGE_FULL", reason: "disk full" });
    expect(health.fault).toMatchObject({ reason: "disk full" });
    expect(unit.failed(new Error("not storage"))).toBeNull();

    lift();
    unit.run(() => db.query("SELECT count(*) FROM items").get(), { transaction: true });
    unit.settle();
    expect(health.fault).not.toBeNull(); // read-only work commits even on a full disk

    unit.run(() => insert("back"), { transaction: true });
    unit.settle();
    expect(health.fault).toBeNull();
  });

  test("ctx.tx and events committed after an async handler count as writes that went through", async () => {
    cap();
    unit.failed(fill());
    lift();
    await unit.run(async (s) => {
      s.tx(() => insert("in tx"));
    }, { transaction: false });
    expect(health.fault).toBeNull();

    cap();
    unit.failed(fill());
    lift();
    await unit.run(async (s) => {
      emit(s, "loose");
    }, { transaction: false });
    expect(health.fault).toBeNull();
  });

  test("a full disk in one unit of a group: SQLite rolls the whole group back, and the units before it fail with that fault", () => {
    unit = new UnitOfWork(db, outbox, (events) => published.push(events), 1_000, () => {}, health);
    cap();
    const outcomes: string[] = [];
    let thrown: unknown;
    for (let i = 0; i < 100 && thrown === undefined; i++) {
      try {
        unit.run((s) => (insert(big()), emit(s, "e")), { transaction: true });
        unit.whenCommitted(() => outcomes.push("ok"), (err) => outcomes.push((err as { code?: string }).code ?? String(err)));
      } catch (err) {
        thrown = err;
      }
    }
    expect((thrown as { code?: string }).code).toBe("SQLITE_FULL");
    expect(outcomes.length).toBeGreaterThan(0);
    expect(new Set(outcomes)).toEqual(new Set(["SQLITE_FULL"]));
    expect(db.inTransaction).toBe(false);
    lift();
    expect(items()).toEqual([]);
    expect(outboxTypes()).toEqual([]);
    // The next unit opens a group of its own.
    unit.run(() => insert("after"), { transaction: true });
    unit.settle();
    expect(items()).toEqual(["after"]);
  });

  test("a handler that ends the group's transaction itself fails the units before it in the group", () => {
    unit = new UnitOfWork(db, outbox, (events) => published.push(events), 1_000, () => {}, health);
    const outcomes: string[] = [];
    unit.run(() => insert("lost"), { transaction: true });
    unit.whenCommitted(() => outcomes.push("ok"), (err) => outcomes.push(String(err)));
    expect(() =>
      unit.run(() => {
        db.exec("ROLLBACK");
        throw new Error("gave up");
      }, { transaction: true }),
    ).toThrow("gave up");
    expect(outcomes).toEqual(["Error: the transaction was rolled back by SQLite"]);
    expect(items()).toEqual([]);
    expect(health.fault).toBeNull();
    unit.run(() => insert("after"), { transaction: true });
    unit.settle();
    expect(items()).toEqual(["after"]);
  });

  test("acks that cannot be written (a full disk) do not fail the unit that carried them: it runs in a group of its own, the rows stay unsent", () => {
    const n = 2_000;
    unit.run((s) => {
      for (let i = 0; i < n; i++) emit(s, "e");
    }, { transaction: true });
    unit.settle();
    cap();
    // Every other row: a thousand ranges of sent seqs, more than the file's free room holds.
    outbox.markSentLater(Array.from({ length: n / 2 }, (_, i) => 2 * i + 1));
    const done = unit.run(() => "served", { transaction: true }) as Done<string>;
    unit.settle();
    expect(done.value).toBe("served");
    expect(health.fault).toMatchObject({ reason: "disk full" });
    lift();
    expect(outbox.unsent(0, 10_000)).toHaveLength(n);
    // Dropped, not held: published again at the next relay, when they are acked anew.
    outbox.flushSent();
    expect(outbox.unsent(0, 10_000)).toHaveLength(n);
  });

  test("the unit that carried acks that could not be written commits in a group of its own, and its reply is released as committed", () => {
    unit.run((s) => {
      for (let i = 0; i < 400; i++) emit(s, "e");
    }, { transaction: true });
    unit.settle();
    unit = new UnitOfWork(db, outbox, (events) => published.push(events), 1_000, () => {}, health);
    cap();
    outbox.markSentLater(Array.from({ length: 400 }, (_, i) => i + 1));
    const outcomes: string[] = [];
    unit.run(() => db.query("DELETE FROM items").run(), { transaction: true });
    unit.whenCommitted(() => outcomes.push("ok"), (err) => outcomes.push(String(err)));
    unit.settle();
    expect(outcomes).toEqual(["ok"]);
  });

  test("while degraded, a commit that fails does not declare the store back, and an error that is not storage's does not hide a write that commits", () => {
    cap();
    unit.failed(fill());
    lift();
    unit = new UnitOfWork(db, outbox, (events) => published.push(events), 1_000, () => {}, health);
    db.exec("PRAGMA foreign_keys = ON; CREATE TABLE parents (id INTEGER PRIMARY KEY); CREATE TABLE children (parent INTEGER REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED)");
    unit.run(() => (insert("lost"), db.query("INSERT INTO children (parent) VALUES (42)").run()), { transaction: true });
    unit.settle(); // fails at COMMIT: nothing went through
    expect(health.fault).toMatchObject({ reason: "disk full" });

    unit.run(() => insert("through"), { transaction: true });
    expect(unit.failed(new Error("a handler's own failure"))).toBeNull();
    unit.settle();
    expect(health.fault).toBeNull();
  });

  test("a healthy store is not touched by commits", () => {
    unit.run(() => insert("a"), { transaction: true });
    unit.settle();
    expect(health.fault).toBeNull();
  });
});

describe("what commits when, and what a failed commit takes with it", () => {
  test("a plain function returning a promise: what it emitted before its first await is published by the time run() returns", async () => {
    const done = unit.run((s) => {
      emit(s, "before");
      return Promise.resolve(1);
    }, { transaction: true });
    expect(published.map((batch) => batch.map((e) => e.type))).toEqual([["before"]]);
    await done;
  });

  test("a plain function returning a promise that emitted nothing first publishes nothing; neither does a ctx.tx without events", async () => {
    await unit.run(() => Promise.resolve(1), { transaction: true });
    await unit.run(async (s) => {
      s.tx(() => insert("quiet"));
    }, { transaction: false });
    expect(published).toEqual([]);
    expect(items()).toEqual(["quiet"]);
  });

  test("a plain function returning a promise whose first part's commit fails: its promise rejects with that failure, nothing of it is published", async () => {
    unit = new UnitOfWork(db, outbox, (events) => published.push(events), 1_000);
    failAtCommit();
    unit.run(orphan, { transaction: true });
    let kept = 0;
    const done = unit.run((s) => {
      emit(s, "first part");
      // Its own outcome no longer matters (and must not surface as an unhandled rejection).
      return Promise.reject(new Error("the rest failed too"));
    }, { transaction: true, bookkeeping: () => kept++ });
    await expect(done).rejects.toThrow(/FOREIGN KEY/);
    expect(published).toEqual([]);
    expect(outboxTypes()).toEqual([]);
    expect(kept).toBe(0);
  });

  test("a unit that commits on its own (its group old enough) and fails at COMMIT throws that failure: it neither answers nor publishes as committed", () => {
    unit = new UnitOfWork(db, outbox, (events) => published.push(events), 0);
    failAtCommit();
    let kept = 0;
    expect(() => unit.run((s) => (orphan(), emit(s, "never"), "answered"), { transaction: true, bookkeeping: () => kept++ })).toThrow(/FOREIGN KEY/);
    expect(outboxTypes()).toEqual([]);
    expect(db.inTransaction).toBe(false);
    // The next unit commits as usual.
    const done = unit.run((s) => (insert("after"), emit(s, "after"), "ok"), { transaction: true }) as Done<string>;
    expect(done.events.map((e) => e.type)).toEqual(["after"]);
    expect(items()).toEqual(["after"]);
  });

  test("a plain function returning a promise that rejects keeps no bookkeeping (an event's cursor stays where it was)", async () => {
    let kept = 0;
    const done = unit.run(() => Promise.reject(new Error("failed after its first part")), { transaction: true, bookkeeping: () => kept++ });
    await expect(done).rejects.toThrow("failed after its first part");
    expect(kept).toBe(0);
    await unit.run(() => Promise.resolve(1), { transaction: true, bookkeeping: () => kept++ });
    expect(kept).toBe(1);
  });

  test("an async handler that emits nothing still keeps its bookkeeping once it returns", async () => {
    let kept = 0;
    await unit.run(async () => 1, { transaction: false, bookkeeping: () => kept++ });
    expect(kept).toBe(1);
  });

  test("a ctx.tx or loose events of an async handler are committed on their own, even when a group opened meanwhile fails at its commit", async () => {
    unit = new UnitOfWork(db, outbox, (events) => published.push(events), 1_000);
    failAtCommit();
    const outcomes: string[] = [];
    const group = () => {
      unit.run(orphan, { transaction: true });
      unit.whenCommitted(() => outcomes.push("ok"), (err) => outcomes.push(String(err)));
    };
    // ctx.tx after an await that resumes before the group's own settle...
    const tx = unit.run(async (s) => {
      await null;
      s.tx(() => insert("tx"));
    }, { transaction: false });
    group();
    await tx;
    // ...and loose events of a handler that never awaits.
    const loose = unit.run(async (s) => void emit(s, "loose"), { transaction: false });
    group();
    const { events } = await loose;
    expect(outcomes).toHaveLength(2);
    expect(outcomes.every((o) => /FOREIGN KEY/.test(o))).toBe(true);
    expect(items()).toEqual(["tx"]);
    expect(events.map((e) => e.type)).toEqual(["loose"]);
    expect(outboxTypes()).toEqual(["loose"]);
  });
});

/** A write SQLite refuses only at COMMIT (a deferred foreign key): the group it is in fails there. */
function failAtCommit(): void {
  db.exec("PRAGMA foreign_keys = ON; CREATE TABLE parents (id INTEGER PRIMARY KEY); CREATE TABLE children (parent INTEGER REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED)");
}
const orphan = () => void db.query("INSERT INTO children (parent) VALUES (42)").run();
