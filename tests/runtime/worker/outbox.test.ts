import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { Outbox } from "../../../runtime/worker/outbox";
import { RESERVE, readLogRecord } from "../../../runtime/storage/generation";
import { MAX_DATA_DEPTH } from "../../../runtime/worker/channel";
import { tempDir } from "../../helpers/tmp";
import { existsSync, rmSync } from "node:fs";

let db: Database;
beforeEach(() => {
  db = new Database(":memory:", { strict: true });
});
afterEach(() => db.close());

const event = (n: number) => ({ id: `id-${n}`, type: "thing/made", time: "2026-11-26T00:00:00.000Z", data: { n } });

describe("Outbox", () => {
  test("add numbers events in commit order and unsent returns them with their data", () => {
    const outbox = new Outbox(db, 100);
    const written = outbox.add([event(1), event(2)]);
    expect(written.map((e) => e.seq)).toEqual([1, 2]);
    expect(outbox.unsent()).toEqual([
      { seq: 1, ...event(1) },
      { seq: 2, ...event(2) },
    ]);
    expect(outbox.unsent(1)).toEqual([{ seq: 2, ...event(2) }]);
    expect(outbox.unsent(0, 1)).toHaveLength(1);
  });

  test("markSent removes rows from unsent but keeps them as the event log", () => {
    const outbox = new Outbox(db, 100);
    outbox.add([event(1), event(2), event(3)]);
    outbox.markSent([1, 3]);
    expect(outbox.unsent().map((e) => e.seq)).toEqual([2]);
    expect((db.query("SELECT COUNT(*) AS n FROM _plinth_outbox").get() as { n: number }).n).toBe(3);
  });

  test("markSent marks exactly the acked rows, in any order, with gaps and repeats (one UPDATE per consecutive run)", () => {
    const outbox = new Outbox(db, 100);
    outbox.add([1, 2, 3, 4, 5, 6, 7].map(event));
    outbox.markSent([7, 2, 3, 3, 5]);
    expect(outbox.unsent().map((e) => e.seq)).toEqual([1, 4, 6]);
    outbox.markSent([]);
    expect(outbox.unsent().map((e) => e.seq)).toEqual([1, 4, 6]);
  });

  test("prune keeps the newest retainSent sent rows and every unsent row", () => {
    const outbox = new Outbox(db, 2);
    outbox.add([1, 2, 3, 4, 5, 6].map(event));
    outbox.markSent([2, 3, 4, 5, 6]);
    outbox.prune();
    const rows = db.query("SELECT seq, sent FROM _plinth_outbox_state ORDER BY seq").all();
    expect(rows).toEqual([
      { seq: 1, sent: 0 },
      { seq: 5, sent: 1 },
      { seq: 6, sent: 1 },
    ]);
  });

  test("prune drops sent rows committed longer than retainSentMs ago, never unsent ones", () => {
    const outbox = new Outbox(db, 100, 60_000);
    outbox.add([1, 2, 3].map(event));
    outbox.markSent([1, 2]);
    db.query("UPDATE _plinth_outbox SET time = ?").run(new Date().toISOString());
    db.query("UPDATE _plinth_outbox SET time = ? WHERE seq = 1").run(new Date(Date.now() - 120_000).toISOString());
    outbox.prune();
    expect((db.query("SELECT seq FROM _plinth_outbox ORDER BY seq").all() as Array<{ seq: number }>).map((r) => r.seq)).toEqual([2, 3]);
    outbox.prune(Date.now() + 10 * 60_000);
    expect((db.query("SELECT seq FROM _plinth_outbox ORDER BY seq").all() as Array<{ seq: number }>).map((r) => r.seq)).toEqual([3]);
  });

  test("seq never goes back: pruning keeps the newest row, by count or by age", () => {
    const byCount = new Outbox(db, 0);
    byCount.add([1, 2, 3].map(event));
    byCount.markSent([1, 2, 3]);
    byCount.prune();
    expect(byCount.add([event(4)]).map((e) => e.seq)).toEqual([4]);

    const byAge = new Outbox(db, 100, 1);
    byAge.markSent([4]);
    byAge.prune(Date.now() + 60_000);
    expect((db.query("SELECT seq FROM _plinth_outbox").all() as Array<{ seq: number }>).map((r) => r.seq)).toEqual([4]);
    expect(byAge.add([event(5)]).map((e) => e.seq)).toEqual([5]);
  });

  test("acks are kept as ranges: consecutive acks extend one range, and prune merges ranges nothing unsent lies between", () => {
    const outbox = new Outbox(db, 100);
    const ranges = () => db.query("SELECT lo, hi FROM _plinth_outbox_sent ORDER BY lo").all();
    outbox.add([1, 2, 3, 4, 5, 6].map(event));
    outbox.markSent([1, 2]);
    outbox.markSent([3]);
    outbox.markSent([5, 6]);
    expect(ranges()).toEqual([
      { lo: 1, hi: 3 },
      { lo: 5, hi: 6 },
    ]);
    outbox.prune();
    expect(ranges()).toHaveLength(2); // 4 is unsent: the ranges stay apart
    outbox.markSent([4, 4, 2]);
    outbox.prune();
    expect(ranges()).toEqual([{ lo: 1, hi: 6 }]);
    expect(outbox.unsent()).toEqual([]);
    expect(db.query("SELECT seq, sent FROM _plinth_outbox_state ORDER BY seq").all()).toEqual([1, 2, 3, 4, 5, 6].map((seq) => ({ seq, sent: 1 })));
  });

  test("rows a version before 0.3 marked sent (their sent_at) stay sent", () => {
    db.exec("CREATE TABLE _plinth_outbox (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, type TEXT NOT NULL, time TEXT NOT NULL, data TEXT NOT NULL, sent_at TEXT)");
    db.exec(`INSERT INTO _plinth_outbox VALUES (1, 'a', 't', '2026-01-01T00:00:00.000Z', '{}', '2026-01-01T00:00:01.000Z'), (2, 'b', 't', '2026-01-01T00:00:00.000Z', '{}', NULL)`);
    const outbox = new Outbox(db, 0);
    expect(outbox.unsent().map((e) => e.seq)).toEqual([2]);
    expect(outbox.add([event(3)]).map((e) => e.seq)).toEqual([3]);
    outbox.markSent([2, 3]);
    outbox.prune();
    expect((db.query("SELECT seq FROM _plinth_outbox").all() as Array<{ seq: number }>).map((r) => r.seq)).toEqual([3]);
  });

  test("an outbox made by an earlier version (AUTOINCREMENT, unsent index) still works and loses the index", () => {
    db.exec("CREATE TABLE _plinth_outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, time TEXT NOT NULL, data TEXT NOT NULL, sent_at TEXT)");
    db.exec("CREATE INDEX _plinth_outbox_unsent ON _plinth_outbox (seq) WHERE sent_at IS NULL");
    const outbox = new Outbox(db, 100);
    expect(db.query("SELECT name FROM sqlite_master WHERE name = '_plinth_outbox_unsent'").get()).toBeNull();
    outbox.add([event(1), event(2)]);
    outbox.markSent([1]);
    expect(outbox.unsent().map((e) => e.seq)).toEqual([2]);
  });
});

describe("Outbox with its log's record", () => {
  test("a sequence number is never handed out twice: after a crash, and after the file lost its last commits", () => {
    using dir = tempDir("plinth-outbox-record");
    const file = dir.join("svc.sqlite");
    const recordFile = dir.join("svc.log.json");
    const open = () => new Database(file, { create: true, strict: true });
    const rewinds: string[] = [];
    const onRewound = (why: string) => rewinds.push(why);

    let disk = open();
    let outbox = new Outbox(disk, 100, undefined, recordFile, onRewound);
    expect(outbox.add([event(1), event(2)]).map((e) => e.seq)).toEqual([1, 2]);
    disk.close(); // a crash: no clean close of the outbox

    // The file lost both rows (as with its WAL deleted), the record did not: numbers go on past the reservation.
    disk = open();
    disk.exec("DELETE FROM _plinth_outbox");
    outbox = new Outbox(disk, 100, undefined, recordFile, onRewound);
    const [after] = outbox.add([event(3)]);
    expect(after!.seq).toBe(RESERVE + 1);
    outbox.close(); // clean: the record holds the exact last number
    disk.close();
    expect(readLogRecord(recordFile)!.last).toBe(RESERVE + 1);

    // An older copy of the file put back after a clean stop: a new generation, above every old number.
    disk = open();
    disk.exec("DELETE FROM _plinth_outbox");
    const before = readLogRecord(recordFile)!.generation;
    outbox = new Outbox(disk, 100, undefined, recordFile, onRewound);
    expect(outbox.generation!.id).not.toBe(before);
    expect(outbox.generation!.start).toBe(RESERVE + 2);
    expect(outbox.add([event(4)])[0]!.seq).toBe(RESERVE + 2);
    expect(rewinds).toHaveLength(1);
    disk.close();
  });

  test("a commit past the reservation writes the record first", () => {
    using dir = tempDir("plinth-outbox-record");
    const recordFile = dir.join("svc.log.json");
    const outbox = new Outbox(db, 100, undefined, recordFile);
    for (let i = 0; i < RESERVE; i++) db.query("INSERT INTO _plinth_outbox (id, type, time, data) VALUES ('x', 't', 't', '{}')").run();
    expect(readLogRecord(recordFile)!.reserved).toBe(RESERVE);
    const [e] = outbox.add([event(1)]);
    expect(e!.seq).toBe(RESERVE + 1);
    expect(readLogRecord(recordFile)!.reserved).toBe(RESERVE + 1 + RESERVE);
  });
});

describe("Outbox: what it refuses, and when it prunes on its own", () => {
  const invalid = (data: unknown) => {
    const outbox = new Outbox(db, 100);
    try {
      outbox.add([{ ...event(1), data }]);
    } catch (err) {
      expect(outbox.unsent()).toEqual([]);
      return err as { code: string; message: string };
    }
    throw new Error("add took data it cannot carry");
  };

  test("data JSON cannot carry, or nested deeper than MAX_DATA_DEPTH, is refused with PLT_EVENT_INVALID naming why", () => {
    expect(invalid(10n)).toMatchObject({ code: "PLT_EVENT_INVALID", message: expect.stringMatching(/^emit thing\/made: data JSON cannot carry \(.+\)$/) });
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(invalid(cycle)).toMatchObject({ code: "PLT_EVENT_INVALID", message: expect.stringContaining("data JSON cannot carry") });
    expect(invalid(() => 1)).toMatchObject({ code: "PLT_EVENT_INVALID", message: "emit thing/made: data JSON cannot carry (a function)" });
    const nest = (levels: number) => {
      let value: unknown = 1;
      for (let i = 0; i < levels; i++) value = [value];
      return value;
    };
    expect(invalid(nest(MAX_DATA_DEPTH + 1))).toMatchObject({ code: "PLT_EVENT_INVALID", message: `emit thing/made: data nested deeper than ${MAX_DATA_DEPTH} levels` });
    expect(new Outbox(db, 100).add([{ ...event(1), data: nest(MAX_DATA_DEPTH) }])).toHaveLength(1);
  });

  test("acks prune the log once at least 100 of them (or a tenth of retainSent) came since the last prune", () => {
    const count = () => (db.query("SELECT count(*) AS n FROM _plinth_outbox").get() as { n: number }).n;
    const outbox = new Outbox(db, 5);
    outbox.add(Array.from({ length: 200 }, (_, i) => event(i + 1)));
    outbox.markSent(Array.from({ length: 99 }, (_, i) => i + 1));
    expect(count()).toBe(200);
    outbox.markSent([100]);
    // Sent rows among the newest 5 numbers are kept: none of 1..100.
    expect(count()).toBe(100);
    outbox.markSent(Array.from({ length: 99 }, (_, i) => i + 101));
    expect(count()).toBe(100);

    // retainSent 2,000: every 200 acks. Sent rows committed over a minute ago go at each prune.
    const other = new Database(":memory:", { strict: true });
    const total = () => (other.query("SELECT count(*) AS n FROM _plinth_outbox").get() as { n: number }).n;
    const large = new Outbox(other, 2_000, 60_000);
    const committedAt = (i: number) => new Date(Date.now() - (i < 50 ? 3_600_000 : 0)).toISOString();
    large.add(Array.from({ length: 300 }, (_, i) => ({ ...event(i + 1), time: committedAt(i) })));
    large.markSent(Array.from({ length: 50 }, (_, i) => i + 1));
    large.markSent(Array.from({ length: 100 }, (_, i) => i + 51));
    expect(total()).toBe(300);
    large.markSent(Array.from({ length: 50 }, (_, i) => i + 151));
    expect(total()).toBe(250);
    other.close();
  });

  test("a log opened again since (a new version during a hot replacement) keeps its own record at the old one's close", () => {
    using dir = tempDir("plinth-outbox-record");
    const file = dir.join("svc.sqlite");
    const recordFile = dir.join("svc.log.json");
    const disk = new Database(file, { create: true, strict: true });
    const old = new Outbox(disk, 100, undefined, recordFile);
    old.add([event(1)]);
    const other = new Database(file, { strict: true });
    const next = new Outbox(other, 100, undefined, recordFile);
    const kept = readLogRecord(recordFile);
    old.close();
    expect(readLogRecord(recordFile)).toEqual(kept);
    const [added] = next.add([event(2)]);
    next.close();
    expect(readLogRecord(recordFile)!.last).toBe(added!.seq);
    other.close();
    disk.close();
  });

  test("without a record kept: no generation, and close writes nothing; a record removed meanwhile is not written again at close", () => {
    const outbox = new Outbox(db, 100);
    outbox.add([event(1)]);
    expect(outbox.generation).toBeNull();
    expect(() => outbox.close()).not.toThrow();

    using dir = tempDir("plinth-outbox-record");
    const recordFile = dir.join("svc.log.json");
    const disk = new Database(dir.join("svc.sqlite"), { create: true, strict: true });
    const kept = new Outbox(disk, 100, undefined, recordFile);
    expect(kept.generation).toEqual({ id: readLogRecord(recordFile)!.generation, start: readLogRecord(recordFile)!.start });
    rmSync(recordFile);
    kept.close();
    expect(existsSync(recordFile)).toBe(false);
    disk.close();
  });
});
