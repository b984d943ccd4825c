/**
 * Storage faults (runtime/storage/faults.ts): real SQLite and OS errors produced on real files are
 * told apart from every other error; the client's answer names no path; a store's health is
 * degraded at a fault and ok again once a write commits with no fault for the quiet time; the
 * worker's unit of work and the broker's group commit report to it; the breaker does not count a
 * storage fault; the gateway gives both codes Retry-After.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { closeSync, openSync, writeFileSync, writeSync } from "node:fs";
import { CircuitBreaker, isFailure } from "../../../runtime/breaker/breaker";
import { GroupCommit } from "../../../runtime/broker/persistence/commit";
import { PlinthError } from "../../../runtime/errors";
import { errorResponse } from "../../../runtime/gateway/errors";
import { STORAGE_RETRY_MS, StorageHealth, storageError, storageFault, type StorageState } from "../../../runtime/storage/faults";
import { Outbox } from "../../../runtime/worker/outbox";
import { UnitOfWork } from "../../../runtime/worker/unit";
import { tempDir } from "../../helpers/tmp";

const dir = tempDir("plinth-storage-faults");
afterAll(() => dir[Symbol.dispose]());
let files = 0;

/** A WAL database file with table t, on this machine's disk. */
function database(): Database {
  const db = new Database(dir.join(`${++files}.sqlite`), { create: true, strict: true });
  db.exec("PRAGMA journal_mode = WAL; CREATE TABLE t (x TEXT)");
  return db;
}

/** Caps the file at the pages it has: the next write that needs a page fails with SQLITE_FULL, as on a full disk. */
const cap = (db: Database) => db.exec(`PRAGMA max_page_count = ${(db.query("PRAGMA page_count").get() as { page_count: number }).page_count}`);
const uncap = (db: Database) => db.exec("PRAGMA max_page_count = 4294967294");
const fill = (db: Database) => {
  for (let i = 0; i < 1_000; i++) db.query("INSERT INTO t (x) VALUES (?)").run("x".repeat(1_500));
};

/** What `fn` throws. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error("did not throw");
}

describe("classification of real errors", () => {
  test("SQLITE_FULL (a write past the file's page limit) → PLT_STORAGE_FULL, disk full", () => {
    const db = database();
    cap(db);
    const err = thrown(() => fill(db));
    expect(storageFault(err)).toEqual({ code: "PLT_STORAGE_FULL", reason: "disk full", cause: "SQLITE_FULL", detail: "database or disk is full" });
  });

  test("SQLITE_READONLY (a write through a connection opened read-only) → PLT_STORAGE_UNAVAILABLE, read-only", () => {
    const db = database();
    const readonly = new Database(db.filename, { readonly: true });
    const err = thrown(() => readonly.query("INSERT INTO t (x) VALUES ('a')").run());
    expect(storageFault(err)).toMatchObject({ code: "PLT_STORAGE_UNAVAILABLE", reason: "read-only", cause: "SQLITE_READONLY" });
  });

  test("SQLITE_CORRUPT (a damaged b-tree page) and SQLITE_NOTADB (a file that is not a database) → corrupt", () => {
    const file = dir.join("damaged.sqlite");
    const db = new Database(file, { create: true });
    db.exec("PRAGMA journal_mode = DELETE; PRAGMA page_size = 4096; CREATE TABLE t (x TEXT)");
    for (let i = 0; i < 10; i++) db.query("INSERT INTO t (x) VALUES (?)").run(`row ${i}`);
    db.close();
    // Page 2 is t's root: its first byte, the page type (13, a table leaf), made one no b-tree page has.
    const fd = openSync(file, "r+");
    writeSync(fd, Buffer.from([0x7f]), 0, 1, 4096);
    closeSync(fd);
    const damaged = new Database(file);
    expect(storageFault(thrown(() => damaged.query("SELECT * FROM t").all()))).toMatchObject({ code: "PLT_STORAGE_UNAVAILABLE", reason: "corrupt", cause: "SQLITE_CORRUPT" });
    damaged.close();

    writeFileSync(dir.join("text.sqlite"), "this is not a database, ".repeat(200));
    const text = new Database(dir.join("text.sqlite"));
    expect(storageFault(thrown(() => text.query("SELECT * FROM sqlite_master").all()))).toMatchObject({ reason: "corrupt", cause: "SQLITE_NOTADB" });
  });

  test("SQLITE_CANTOPEN (a file in a folder that does not exist) → cannot open", () => {
    expect(storageFault(thrown(() => new Database(dir.join("missing/x.sqlite"))))).toMatchObject({ code: "PLT_STORAGE_UNAVAILABLE", reason: "cannot open", cause: "SQLITE_CANTOPEN" });
  });

  test("ENOSPC from a file write (/dev/full) → PLT_STORAGE_FULL, disk full", () => {
    expect(storageFault(thrown(() => writeFileSync("/dev/full", "x")))).toMatchObject({ code: "PLT_STORAGE_FULL", reason: "disk full", cause: "ENOSPC" });
  });

  test("an extended I/O error code counts by its primary code; SQLITE_IOERR_NOMEM (memory) does not", () => {
    expect(storageFault({ code: "SQLITE_IOERR_WRITE", message: "disk I/O error" })).toMatchObject({ reason: "I/O error", cause: "SQLITE_IOERR_WRITE" });
    expect(storageFault({ code: "SQLITE_READONLY_DBMOVED", message: "m" })?.reason).toBe("read-only");
    expect(storageFault({ code: "SQLITE_IOERR_NOMEM", message: "out of memory" })).toBeNull();
  });

  test("errors that are not the storage's: a constraint, SQLITE_BUSY, a syntax error, a handler's own, a PlinthError, non-errors", () => {
    const db = database();
    db.exec("CREATE TABLE u (k INTEGER PRIMARY KEY)");
    db.exec("INSERT INTO u VALUES (1)");
    expect(storageFault(thrown(() => db.exec("INSERT INTO u VALUES (1)")))).toBeNull();
    expect(storageFault(thrown(() => db.exec("SELEC 1")))).toBeNull();
    // Another connection holds the write lock: busy is contention, not a storage fault.
    const other = new Database(db.filename);
    other.exec("PRAGMA busy_timeout = 0; BEGIN IMMEDIATE");
    const busy = thrown(() => db.exec("PRAGMA busy_timeout = 0; BEGIN IMMEDIATE"));
    expect((busy as { code: string }).code).toBe("SQLITE_BUSY");
    expect(storageFault(busy)).toBeNull();
    other.exec("ROLLBACK");
    for (const err of [new Error("no"), new PlinthError("PLT_STORAGE_FULL", "already told"), "SQLITE_FULL", null, undefined, 13, Symbol("x"), { code: 13 }]) {
      expect(storageFault(err)).toBeNull();
    }
  });
});

describe("what the caller is told", () => {
  test("a short line naming the service and the reason, never a path or a stack; retryable, with when to retry", () => {
    const full = storageError("orders", storageFault({ code: "SQLITE_FULL", message: "database or disk is full" })!);
    expect(full.toWire()).toEqual({
      code: "PLT_STORAGE_FULL",
      message: "orders: storage is full, try again later",
      status: 507,
      retryable: true,
      data: { service: "orders", reason: "disk full", retryInMs: STORAGE_RETRY_MS },
    });
    const os = storageFault(thrown(() => writeFileSync(dir.join("missing/record"), "x")));
    expect(os).toBeNull(); // ENOENT: not a storage fault
    const readonly = storageError("orders", storageFault({ code: "EROFS", message: `EROFS: read-only file system, open '${dir.path}/orders.sqlite'` })!);
    expect(readonly.toWire()).toMatchObject({ code: "PLT_STORAGE_UNAVAILABLE", status: 503, retryable: true, message: "orders: storage unavailable (read-only), try again later" });
    expect(readonly.message).not.toContain("/");
  });

  test("the gateway's answer carries Retry-After for both codes", async () => {
    for (const [cause, status] of [["SQLITE_FULL", 507], ["SQLITE_IOERR_WRITE", 503]] as const) {
      const res = errorResponse(storageError("orders", storageFault({ code: cause, message: "m" })!));
      expect(res.status).toBe(status);
      expect(res.headers.get("retry-after")).toBe("1");
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe(status === 507 ? "PLT_STORAGE_FULL" : "PLT_STORAGE_UNAVAILABLE");
    }
  });

  test("the callee's breaker does not count a storage fault: it stays closed through a hundred of them", () => {
    const breaker = new CircuitBreaker("orders", { failureThreshold: 3, resetTimeoutMs: 1_000, halfOpenMaxCalls: 1, minimumCalls: 5, failureRate: 0.5 });
    for (const cause of ["SQLITE_FULL", "SQLITE_READONLY", "SQLITE_IOERR_WRITE", "SQLITE_CORRUPT"]) {
      const err = storageError("orders", storageFault({ code: cause, message: "m" })!);
      expect(isFailure(err)).toBe(false);
      for (let i = 0; i < 25; i++) breaker.exit(breaker.enter() as Exclude<ReturnType<CircuitBreaker["enter"]>, PlinthError>, isFailure(err));
    }
    expect(breaker.state).toBe("closed");
    expect(isFailure(new PlinthError("PLT_HANDLER_ERROR", "x"))).toBe(true);
  });
});

describe("a store's health", () => {
  test("mirror takes the state another thread's writer reported: each change is told, ok over ok is not", () => {
    const health = new StorageHealth();
    const told: Array<[string | null, string | null]> = [];
    health.listen((state, previous) => told.push([state?.reason ?? null, previous?.reason ?? null]));
    health.mirror(null);
    const full = { code: "PLT_STORAGE_FULL", reason: "disk full", cause: "SQLITE_FULL", detail: "database or disk is full", since: "2026-12-06T00:00:00.000Z" } as const;
    health.mirror(full);
    expect(health.fault).toEqual(full);
    health.mirror(null);
    expect(health.fault).toBeNull();
    expect(told).toEqual([
      ["disk full", null],
      [null, "disk full"],
    ]);
  });

  function watched(quietMs = 1_000) {
    const clock = { t: 0 };
    const health = new StorageHealth(undefined, quietMs, () => clock.t);
    const changes: Array<string> = [];
    health.listen((state: StorageState | null) => changes.push(state ? `${state.reason} (${state.cause})` : "ok"));
    return { clock, health, changes };
  }
  const full = { code: "SQLITE_FULL", message: "database or disk is full" };

  test("degraded at the first fault, told once; another reason is told; other errors change nothing", () => {
    const { health, changes } = watched();
    expect(health.failed(new Error("constraint"))).toBeNull();
    expect(health.fault).toBeNull();
    health.failed(full);
    health.failed(full);
    health.failed({ code: "ENOSPC", message: "no space" }); // same reason
    expect(changes).toEqual(["disk full (SQLITE_FULL)"]);
    expect(health.fault).toMatchObject({ code: "PLT_STORAGE_FULL", reason: "disk full", cause: "SQLITE_FULL" });
    const since = health.fault!.since;
    health.failed({ code: "SQLITE_IOERR_WRITE", message: "disk I/O error" });
    expect(changes).toEqual(["disk full (SQLITE_FULL)", "I/O error (SQLITE_IOERR_WRITE)"]);
    expect(health.fault!.since).toBe(since); // degraded since the first fault
  });

  test("ok again once a write commits with no fault for the quiet time; a write soon after a fault waits it out", async () => {
    const { clock, health, changes } = watched(50);
    health.committed(); // healthy: nothing
    health.failed(full);
    clock.t = 60;
    health.committed(); // quiet long enough: back at once
    expect(changes).toEqual(["disk full (SQLITE_FULL)", "ok"]);

    health.failed(full);
    clock.t = 70;
    health.committed(); // 10 ms after the fault: not yet
    expect(health.fault).not.toBeNull();
    clock.t = 200;
    await new Promise<void>((resolve) => health.listen((state) => state === null && resolve()));
    expect(changes).toEqual(["disk full (SQLITE_FULL)", "ok", "disk full (SQLITE_FULL)", "ok"]);
  });

  test("a fault after the write that would have ended it keeps the store degraded", async () => {
    const { clock, health } = watched(20);
    health.failed(full);
    clock.t = 5;
    health.committed();
    clock.t = 10;
    health.failed(full);
    clock.t = 1_000;
    await Bun.sleep(40); // the timer set by committed() has fired: it found the later fault
    expect(health.fault).not.toBeNull();
  });
});

describe("the worker's unit of work", () => {
  /** `groupMs`: how old a group may get before a unit commits it (long: the group stays open for the whole test). */
  function unitOn(db: Database, groupMs = 0.2) {
    const health = new StorageHealth(undefined, 0);
    const unit = new UnitOfWork(db, new Outbox(db, 100), () => {}, groupMs, () => {}, health);
    return { unit, health };
  }
  const insert = (db: Database) => () => db.query("INSERT INTO t (x) VALUES (?)").run("x".repeat(1_500));

  test("a handler's write on a full file degrades the store; reads that commit do not end it, a write that commits does", () => {
    const db = database();
    const { unit, health } = unitOn(db);
    cap(db);
    let err: unknown;
    for (let i = 0; i < 100 && !err; i++) {
      try {
        unit.run(insert(db), { transaction: true });
        unit.settle();
      } catch (e) {
        err = e;
      }
    }
    expect(unit.failed(err)).toMatchObject({ reason: "disk full" });
    expect(health.fault?.reason).toBe("disk full");
    unit.run(() => db.query("SELECT count(*) FROM t").get(), { transaction: true });
    unit.settle();
    expect(health.fault?.reason).toBe("disk full"); // nothing was written
    uncap(db);
    unit.run(insert(db), { transaction: true });
    unit.settle();
    expect(health.fault).toBeNull();
  });

  test("a unit whose write fails on a full file takes its group down with it (SQLite rolls back the whole transaction): the others fail with that storage fault, not a generic error", () => {
    const db = database();
    // A group window longer than the test: on a busy machine the first unit would otherwise commit its group alone.
    const { unit } = unitOn(db, 100);
    cap(db);
    expect(() => fill(db)).toThrow("database or disk is full"); // the file is full
    const outcomes: string[] = [];
    unit.run(() => db.query("SELECT 1").get(), { transaction: true }); // opens the group
    unit.whenCommitted(() => outcomes.push("committed"), (e) => outcomes.push((e as { code?: string }).code ?? String(e)));
    expect(() => unit.run(insert(db), { transaction: true })).toThrow("database or disk is full");
    unit.settle();
    expect(outcomes).toEqual(["SQLITE_FULL"]);
  });
});

describe("the broker's group commit", () => {
  test("a write on a full store degrades it; once there is room, the next committed group ends it", async () => {
    const db = database();
    const health = new StorageHealth(undefined, 0);
    const group = new GroupCommit(db, health);
    cap(db);
    const insert = db.query("INSERT INTO t (x) VALUES (?)");
    let failed: unknown;
    for (let i = 0; i < 100 && !failed; i++) await group.write(() => insert.run("x".repeat(1_500))).catch((e: unknown) => (failed = e));
    expect((failed as { code: string }).code).toBe("SQLITE_FULL");
    expect(health.fault).toMatchObject({ code: "PLT_STORAGE_FULL", reason: "disk full" });
    uncap(db);
    await group.write(() => insert.run("y"));
    expect(health.fault).toBeNull();
  });
});
