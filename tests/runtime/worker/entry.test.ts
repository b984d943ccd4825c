/**
 * The plugin worker (entry.ts) on its own: messages in as the host sends them, messages out, and
 * the plugin's SQLite file read beside it, and its events port answered by hand. No host, no broker, no sockets.
 */
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import type { CloudEvent, CommittedEvent } from "../../../runtime/protocol";
import { readLogRecord, logRecordFile } from "../../../runtime/storage/generation";
import type { DeliveryOutcome, HttpResponse, WorkerMessage } from "../../../runtime/worker/channel";
import { tempDir, type TempDir } from "../../helpers/tmp";
import { RawWorker, type InitOptions } from "./raw-worker";

const PLUGIN = `
import { PlinthError } from "plinth";
const insert = (ctx, v) => ctx.db.query("INSERT INTO t (v) VALUES (?)").run(String(v));
export default {
  name: "w",
  version: "1.0.0",
  migrations: ["CREATE TABLE t (v TEXT)", "CREATE TABLE seen (id TEXT, topic TEXT)"],
  routes: {
    "POST /items": (ctx) => {
      insert(ctx, ctx.body.v);
      ctx.emit("added", { v: ctx.body.v });
      ctx.set.status = 201;
      return { v: ctx.body.v, q: ctx.query.q ?? null, id: ctx.params.id ?? null };
    },
    "GET /boom": () => { throw new Error("route broke"); },
  },
  actions: {
    emit: (ctx) => {
      for (const type of ctx.params) ctx.emit(type, { type });
      return ctx.params.length;
    },
    insert: (ctx) => {
      insert(ctx, ctx.params);
      return ctx.db.query("SELECT count(*) AS n FROM t").get().n;
    },
    count: (ctx) => ctx.db.query("SELECT count(*) AS n FROM t").get().n,
    config: (ctx) => ({ config: ctx.config, frozen: Object.isFrozen(ctx.config), service: ctx.service }),
    fail: (ctx) => {
      insert(ctx, "undone");
      ctx.emit("never", {});
      throw new Error("broke");
    },
    refuse: () => { throw new PlinthError("PLT_CONFLICT", "already there", { data: { id: 7 } }); },
    unsendableError: () => { throw new PlinthError("PLT_CONFLICT", "carries a BigInt", { data: { n: 10n } }); },
    throwString: () => { throw "a string"; },
    fn: (ctx) => { ctx.emit("kept", { by: "fn" }); return () => 1; },
    symbol: () => Symbol("s"),
    bigint: (ctx) => { ctx.emit("kept", { by: "bigint" }); return 10n; },
    later: async (ctx) => {
      await Promise.resolve();
      ctx.emit("later", {});
      return "later";
    },
    call: async (ctx) => ({ answer: await ctx.call(ctx.params.target, ctx.params.params) }),
    txThenWait: async (ctx) => {
      ctx.tx(() => ctx.emit("in-tx", {}));
      await ctx.call("gate.open", null);
      return null;
    },
    full: { transaction: false, handler: (ctx) => {
      const { page_count } = ctx.db.query("PRAGMA page_count").get();
      ctx.db.exec("PRAGMA max_page_count = " + page_count);
      return page_count;
    } },
    fkOn: { transaction: false, handler: (ctx) => {
      ctx.db.exec("PRAGMA foreign_keys = ON; CREATE TABLE IF NOT EXISTS parents (id INTEGER PRIMARY KEY); CREATE TABLE IF NOT EXISTS children (parent INTEGER REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED)");
      return null;
    } },
    // Checked only at COMMIT (a deferred foreign key): the group it is in fails there.
    orphan: (ctx) => {
      ctx.db.query("INSERT INTO children (parent) VALUES (42)").run();
      ctx.emit("orphaned", {});
      return "inserted";
    },
    // Answers after a timer of its own: later than any timer the worker set before it was asked.
    tick: async () => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      return null;
    },
    room: { transaction: false, handler: (ctx) => { ctx.db.exec("PRAGMA max_page_count = 4294967294"); return null; } },
    write: (ctx) => {
      ctx.db.query("INSERT INTO t (v) VALUES (?)").run("x".repeat(3000));
      ctx.emit("written", {});
      return null;
    },
  },
  subscribe: {
    "in/#": (ctx) => {
      if (ctx.event.data && ctx.event.data.fail) throw new Error("sub broke");
      ctx.db.query("INSERT INTO seen (id, topic) VALUES (?, ?)").run(ctx.event.id, ctx.topic);
      ctx.emit("handled", { id: ctx.event.id });
    },
    "held/#": async (ctx) => {
      // Waits for the host's reply to a call: the test decides when this handler ends.
      await ctx.call("gate.open", { id: ctx.event.id });
      ctx.db.query("INSERT INTO seen (id, topic) VALUES (?, ?)").run(ctx.event.id, ctx.topic);
    },
  },
};
`;

// Each test starts a worker or two (tens of ms; seconds on a busy machine).
setDefaultTimeout(20_000);

let dir: TempDir;
let pluginPath: string;
const workers: RawWorker[] = [];

beforeAll(() => {
  dir = tempDir("plinth-entry");
  pluginPath = dir.join("w.js");
  writeFileSync(pluginPath, PLUGIN);
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.terminate()));
});
afterAll(() => dir[Symbol.dispose]());

let dataSeq = 0;
const newDataDir = () => dir.join(`data-${++dataSeq}`);

async function open(init: InitOptions = {}, config: Record<string, unknown> = {}, dataDir = newDataDir()) {
  const w = await RawWorker.open(pluginPath, dataDir, init, config);
  workers.push(w);
  return w;
}

function plugin(name: string, source: string): string {
  const path = dir.join(name);
  writeFileSync(path, source);
  return path;
}

/** A service's event as the host hands it to a subscription. */
const serviceEvent = (seq: number, data: unknown = {}, source = "plinth/orders"): CloudEvent => ({
  specversion: "1.0",
  id: `ev-${seq}`,
  source,
  type: "orders.placed",
  time: "2026-12-01T00:00:00.000Z",
  datacontenttype: "application/json",
  sequence: String(seq),
  data,
});

const ok = (r: WorkerMessage) => {
  if (r.t !== "result" || !r.ok) throw new Error(`expected a successful result, got ${JSON.stringify(r)}`);
  return r;
};

describe("start", () => {
  test("init loads the plugin and reports its manifest; open migrates its file and reports ready with its cursors", async () => {
    const w = await open();
    expect(w.manifest.name).toBe("w");
    expect(w.manifest.actions).toContain("emit");
    expect(w.manifest.subscriptions).toEqual(["in/#", "held/#"]);
    expect(w.cursors).toEqual([]);
    expect(w.read("SELECT count(*) AS n FROM _plinth_migrations")).toEqual([{ n: 2 }]);
  });

  test("cursors reported at ready are those the file holds", async () => {
    const dataDir = newDataDir();
    const first = await open({}, {}, dataDir);
    const outcome = ok(await first.request({ t: "deliver", subscription: 0, items: [{ topic: "in/a", event: serviceEvent(3) }] }));
    expect(outcome.value).toEqual({ handled: 1 });
    await first.stop();
    const second = await open({}, {}, dataDir);
    expect(second.cursors).toEqual([{ subscription: "in/#", source: "orders", seq: 3, generation: null }]);
  });

  test("a plugin that throws at import fails init with PLT_PLUGIN_LOAD and its message", async () => {
    const w = new RawWorker(plugin("throws.js", `throw new Error("cannot load me");`), newDataDir());
    workers.push(w);
    const failed = await w.init();
    expect(failed).toEqual({ t: "failed", error: expect.objectContaining({ code: "PLT_PLUGIN_LOAD", message: expect.stringContaining("cannot load me") }) });
  });

  test("an invalid definition fails init with PLT_PLUGIN_INVALID", async () => {
    const w = new RawWorker(plugin("invalid.js", `export default { name: "Bad Name", version: "1.0.0" };`), newDataDir());
    workers.push(w);
    const failed = await w.init();
    expect(failed.t === "failed" && failed.error.code).toBe("PLT_PLUGIN_INVALID");
  });

  test("a built-in service that does not exist fails init with PLT_PLUGIN_LOAD", async () => {
    const w = new RawWorker(pluginPath, newDataDir());
    workers.push(w);
    const from = w.sendAndMark({
      t: "init",
      source: { kind: "builtin", name: "no-such-service" },
      dataDir: w.dataDir,
      retainSent: 1,
      retainSentMs: null,
      groupCommitMs: 0,
      store: { durability: "normal" },
      logLevel: "silent",
      logFormat: "json",
    });
    const failed = await w.next((m) => m.t === "failed", from);
    expect(failed).toEqual({ t: "failed", error: expect.objectContaining({ code: "PLT_PLUGIN_LOAD", message: 'no built-in service "no-such-service"' }) });
  });

  test("a migration that fails fails open with PLT_MIGRATION_FAILED", async () => {
    const w = new RawWorker(plugin("badsql.js", `export default { name: "m", version: "1.0.0", migrations: ["NOT SQL"] };`), newDataDir());
    workers.push(w);
    expect((await w.init()).t).toBe("loaded");
    const failed = await w.openDatabase();
    expect(failed.t === "failed" && failed.error.code).toBe("PLT_MIGRATION_FAILED");
  });

  test("ctx.config is the plugin's own section, frozen; ctx.service its name", async () => {
    const w = await open({}, { region: "eu", limits: { n: 3 } });
    expect(ok(await w.action("config")).value).toEqual({ config: { region: "eu", limits: { n: 3 } }, frozen: true, service: "w" });
  });

  test("open prunes the event log to retainSent sent rows; unsent rows stay", async () => {
    const dataDir = newDataDir();
    const first = await open({ retainSent: 1_000 }, {}, dataDir);
    first.attachPort();
    ok(await first.action("emit", ["a", "b", "c", "d"]));
    await first.nextBatch(0);
    first.ack([1, 2, 3], [4], "refused");
    await first.stop();
    // Sent rows within the newest retainSent numbers are kept.
    expect((await open({ retainSent: 2 }, {}, dataDir)).outbox()).toEqual([
      { seq: 3, type: "c", sent: true },
      { seq: 4, type: "d", sent: false },
    ]);
  });

  test("open prunes sent rows older than retainSentMs; with none (null) their age does not matter", async () => {
    const dataDir = newDataDir();
    const first = await open({}, {}, dataDir);
    first.attachPort();
    ok(await first.action("emit", ["a", "b", "c"]));
    await first.nextBatch(0);
    first.ack([1, 2, 3]);
    await first.stop();
    const backdate = new (await import("bun:sqlite")).Database(`${dataDir}/w.sqlite`);
    backdate.exec("UPDATE _plinth_outbox SET time = '2000-01-01T00:00:00.000Z' WHERE seq < 3");
    backdate.close();

    const noLimit = await open({ retainSentMs: null }, {}, dataDir);
    expect(noLimit.outbox().map((r) => r.seq)).toEqual([1, 2, 3]);
    await noLimit.stop();
    const limited = await open({ retainSentMs: 60_000 }, {}, dataDir);
    expect(limited.outbox().map((r) => r.seq)).toEqual([3]);
  });
});

describe("requests", () => {
  test("an action answers with its value and the events it committed, which are in the outbox, unsent", async () => {
    const w = await open();
    const r = ok(await w.action("emit", ["a", "b/c"]));
    expect(r.value).toBe(2);
    expect(r.events.map((e) => [e.seq, e.type, e.data])).toEqual([
      [1, "a", { type: "a" }],
      [2, "b/c", { type: "b/c" }],
    ]);
    expect(w.outbox()).toEqual([
      { seq: 1, type: "a", sent: false },
      { seq: 2, type: "b/c", sent: false },
    ]);
  });

  test("an HTTP route answers with status, JSON content type and body text; it gets body, query and params", async () => {
    const w = await open();
    const route = w.manifest.routes.findIndex((r) => r.path === "/items");
    const r = ok(await w.request({ t: "http", req: { route, params: {}, search: "q=1", headers: {}, body: { v: "x" } } }));
    const res = r.value as HttpResponse;
    expect(res).toEqual({ status: 201, headers: { "content-type": "application/json;charset=utf-8" }, body: JSON.stringify({ v: "x", q: "1", id: null }) });
    expect(r.events.map((e) => e.type)).toEqual(["added"]);
  });

  test("an async handler answers once it returns, with the events it emitted", async () => {
    const w = await open();
    const r = ok(await w.action("later"));
    expect(r.value).toBe("later");
    expect(r.events.map((e) => e.type)).toEqual(["later"]);
  });

  test("a handler that throws: PLT_HANDLER_ERROR naming the service and what failed, its writes and events undone", async () => {
    const w = await open();
    expect(await w.error({ t: "action", action: "fail", params: null, caller: null })).toEqual({
      code: "PLT_HANDLER_ERROR",
      message: "w: action fail failed",
      status: 500,
      retryable: false,
    });
    const route = w.manifest.routes.findIndex((r) => r.path === "/boom");
    expect((await w.error({ t: "http", req: { route, params: {}, search: "", headers: {}, body: null } })).message).toBe("w: GET /boom failed");
    expect((await w.error({ t: "action", action: "throwString", params: null, caller: null })).message).toBe("w: action throwString failed");
    expect(w.outbox()).toEqual([]);
    expect(ok(await w.action("count")).value).toBe(0);
  });

  test("a PlinthError crosses as thrown: code, status, message and data", async () => {
    const w = await open();
    expect(await w.error({ t: "action", action: "refuse", params: null, caller: null })).toEqual({
      code: "PLT_CONFLICT",
      message: "already there",
      status: 409,
      retryable: false,
      data: { id: 7 },
    });
  });

  test("an error that cannot cross (a BigInt in its data) leaves as the generic one", async () => {
    const w = await open();
    expect(await w.error({ t: "action", action: "unsendableError", params: null, caller: null })).toEqual({
      code: "PLT_HANDLER_ERROR",
      message: "w: action unsendableError failed",
      status: 500,
      retryable: false,
    });
  });

  test("a value that cannot cross fails its request alone; the events it committed leave on their own", async () => {
    const w = await open();
    for (const action of ["fn", "bigint"]) {
      const from = w.received.length;
      const error = await w.error({ t: "action", action, params: null, caller: null });
      expect(error).toEqual({ code: "PLT_HANDLER_ERROR", message: `w: action ${action} returned a value JSON cannot carry`, status: 500, retryable: false });
      expect(w.relayed(from).map((e) => e.data)).toEqual([{ by: action }]);
    }
    const from = w.received.length;
    expect((await w.error({ t: "action", action: "symbol", params: null, caller: null })).message).toBe("w: action symbol returned a value JSON cannot carry");
    await w.roundTrip();
    // Nothing committed: no events message at all, not even an empty one.
    expect(w.received.slice(from).filter((m) => m.t === "events")).toEqual([]);
    expect(w.outbox().map((r) => r.type)).toEqual(["kept", "kept"]);
    expect(ok(await w.action("count")).value).toBe(0);
  });

  test("events an async handler commits with ctx.tx leave at once, before its answer", async () => {
    const w = await open();
    const from = w.received.length;
    const id = w.post({ t: "action", action: "txThenWait", params: null, caller: null });
    const events = await w.next((m): m is Extract<WorkerMessage, { t: "events" }> => m.t === "events", from);
    expect(events.events.map((e) => e.type)).toEqual(["in-tx"]);
    const call = await w.next((m): m is Extract<WorkerMessage, { t: "call" }> => m.t === "call", from);
    w.send({ t: "reply", id: call.id, ok: true, value: null });
    expect(ok(await w.result(id)).events).toEqual([]);
  });

  test("an unknown action fails with PLT_ACTION_NOT_FOUND", async () => {
    const w = await open();
    expect((await w.error({ t: "action", action: "nope", params: null, caller: null })).code).toBe("PLT_ACTION_NOT_FOUND");
  });

  test("ctx.call leaves as a call naming the request, and the host's reply is its value (or its error)", async () => {
    const w = await open();
    const from = w.received.length;
    const id = w.post({ t: "action", action: "call", params: { target: "other.thing", params: { a: 1 } }, caller: null });
    const call = await w.next((m): m is Extract<WorkerMessage, { t: "call" }> => m.t === "call", from);
    expect(call).toEqual({ t: "call", id: expect.any(Number), target: "other.thing", params: { a: 1 }, deadline: null, request: id });
    w.send({ t: "reply", id: call.id, ok: true, value: 42 });
    expect(ok(await w.result(id)).value).toEqual({ answer: 42 });

    const from2 = w.received.length;
    const id2 = w.post({ t: "action", action: "call", params: { target: "missing.thing", params: null }, caller: null });
    const call2 = await w.next((m): m is Extract<WorkerMessage, { t: "call" }> => m.t === "call", from2);
    w.send({ t: "reply", id: call2.id, ok: false, error: { code: "PLT_SERVICE_NOT_FOUND", message: "no such service", status: 404, retryable: false } });
    const r = await w.result(id2);
    expect(r.ok === false && r.error).toEqual({ code: "PLT_SERVICE_NOT_FOUND", message: "no such service", status: 404, retryable: false });
  });

  test("a batch's requests are handled in order and share a commit; each gets its own answer", async () => {
    const w = await open();
    const from = w.sendAndMark({
      t: "batch",
      items: [
        { t: "action", id: 101, action: "insert", params: "a", caller: null },
        { t: "action", id: 102, action: "insert", params: "b", caller: null },
        { t: "action", id: 103, action: "count", params: null, caller: null },
      ],
    });
    const results = await Promise.all([101, 102, 103].map((id) => w.next((m) => m.t === "result" && m.id === id, from)));
    expect(results.map((r) => ok(r).value)).toEqual([1, 2, 2]);
    expect(w.read("SELECT v FROM t ORDER BY rowid")).toEqual([{ v: "a" }, { v: "b" }]);
  });

  test("ping is answered with pong and the heap's size", async () => {
    const w = await open();
    const from = w.sendAndMark({ t: "ping" });
    const pong = await w.next((m): m is Extract<WorkerMessage, { t: "pong" }> => m.t === "pong", from);
    expect(pong.heapBytes).toBeGreaterThan(1_000_000);
  });

  test("a message that is not the protocol's is logged and skipped; the worker serves on", async () => {
    const w = await open();
    w.sendRaw("not json {");
    w.sendRaw({ t: "ping" }); // an object, not JSON text
    w.send({ t: "relay" });
    // Handling fails (a route that does not exist): logged, nothing else.
    w.send({ t: "http", id: 9, req: { route: 99, params: {}, search: "", headers: {}, body: null } });
    expect((await w.result(9)).ok).toBe(false);
    expect(ok(await w.action("insert", "still")).value).toBe(1);
  });
});

describe("the events port", () => {
  test("without a port nothing is published; the rows stay unsent, and a port with relay publishes them, in commit order, in one batch", async () => {
    const w = await open();
    ok(await w.action("emit", ["a", "b"]));
    ok(await w.action("emit", ["c"]));
    expect(w.published).toEqual([]);
    w.attachPort(true);
    expect((await w.nextBatch(0)).map((e) => [e.seq, e.type])).toEqual([
      [1, "a"],
      [2, "b"],
      [3, "c"],
    ]);
    expect(w.outbox().map((r) => r.sent)).toEqual([false, false, false]);
  });

  test("what a request commits is published as it is answered, one batch per turn", async () => {
    const w = await open();
    w.attachPort();
    ok(await w.action("emit", ["a", "b"]));
    expect((await w.nextBatch(0)).map((e) => e.type)).toEqual(["a", "b"]);
  });

  test("acks with no commit to ride along are written on their own, soon", async () => {
    const w = await open();
    w.attachPort();
    ok(await w.action("emit", ["a", "b", "c"]));
    await w.nextBatch(0);
    w.ack([1, 3], [2], "refused");
    // Within ACK_FLUSH_MS (20 ms): nothing signals it, so the file is polled.
    const { eventually } = await import("../../helpers/eventually");
    await eventually(() => w.outbox().filter((r) => r.sent).length === 2, 2_000, 5);
    expect(w.outbox().map((r) => r.sent)).toEqual([true, false, true]);
  });

  test("refused rows are published again after a backoff, and only they: taken ones (even acks still held) are not", async () => {
    const w = await open();
    ok(await w.action("emit", ["a", "b", "c", "d"]));
    w.attachPort(true);
    await w.nextBatch(0);
    w.ack([1], [2, 3, 4], "broker store full");
    expect((await w.nextBatch(1)).map((e) => [e.seq, e.type])).toEqual([
      [2, "b"],
      [3, "c"],
      [4, "d"],
    ]);
    w.ack([2, 3, 4]);
    const { eventually } = await import("../../helpers/eventually");
    await eventually(() => w.outbox().every((r) => r.sent), 2_000, 5);
  });

  test("a relay skips the events on their way: a row is not published twice while its ack is awaited", async () => {
    const w = await open();
    w.attachPort();
    ok(await w.action("emit", ["a", "b"]));
    await w.nextBatch(0);
    w.send({ t: "relay" });
    ok(await w.action("emit", ["sentinel"]));
    // The next batch leaves once the first is answered, and is the sentinel's alone: the relay found only rows on their way.
    w.ack(w.published[0]!.map((e) => e.seq));
    expect((await w.nextBatch(1)).map((e) => e.type)).toEqual(["sentinel"]);
  });

  test("a new port: what was on its way on the old one is published again on it", async () => {
    const w = await open();
    w.attachPort();
    ok(await w.action("emit", ["a", "b"]));
    await w.nextBatch(0);
    w.attachPort(true);
    expect((await w.nextBatch(1)).map((e) => e.seq)).toEqual([1, 2]);
  });

  test("relay of a large backlog: every row once, in order", async () => {
    const w = await open();
    const types = Array.from({ length: 2_500 }, (_, i) => `e${i + 1}`);
    ok(await w.action("emit", types));
    w.attachPort(true);
    expect((await w.nextBatch(0)).map((e) => e.seq)).toEqual(types.map((_, i) => i + 1));
  });

  test("a row written before event data was bounded cannot be sent: its batch stays unsent, the worker serves and publishes on", async () => {
    const w = await open();
    ok(await w.action("emit", ["a"]));
    await w.stop();
    const { Database } = await import("bun:sqlite");
    const db = new Database(`${w.dataDir}/w.sqlite`);
    const deep = "[".repeat(2_000) + "]".repeat(2_000);
    db.query("INSERT INTO _plinth_outbox (seq, id, type, time, data) VALUES (2, 'deep', 'deep', 't', ?), (3, 'after', 'after', 't', '{}')").run(deep);
    db.close();
    const again = await open({}, {}, w.dataDir);
    again.attachPort(true);
    expect(ok(await again.action("insert", "x")).value).toBe(1);
    ok(await again.action("emit", ["sentinel"]));
    expect((await again.nextBatch(0)).map((e) => e.type)).toEqual(["sentinel"]);
    expect(again.outbox().map((r) => r.sent)).toEqual([false, false, false, false]);
  });

  test("stop waits for the acks of the events on their way, writes them, closes the database and records the log's last number", async () => {
    const w = await open();
    w.attachPort();
    ok(await w.action("emit", ["a", "b"]));
    await w.nextBatch(0);
    const stopped = w.stop(5_000);
    w.ack([1, 2]);
    await stopped;
    // Closing the last connection checkpoints and removes the WAL (before this test reads the file).
    expect(existsSync(`${w.dataDir}/w.sqlite-wal`)).toBe(false);
    expect(w.outbox().map((r) => r.sent)).toEqual([true, true]);
    expect(readLogRecord(logRecordFile(w.dataDir, "w"))!.last).toBe(2);
  });

  test("acks that do not come within the stop's wait: those rows stay unsent, to be published at the next start", async () => {
    const w = await open();
    w.attachPort();
    ok(await w.action("emit", ["a"]));
    await w.nextBatch(0);
    await w.stop(50);
    expect(w.outbox().map((r) => r.sent)).toEqual([false]);
  });
});

describe("subscriptions", () => {
  const deliver = (w: RawWorker, subscription: number, events: CloudEvent[], topic = "in/x") =>
    w.request({ t: "deliver", subscription, items: events.map((event) => ({ topic, event })) });

  test("a batch is handled in order, each event once; events already handled (the cursor) are skipped", async () => {
    const w = await open();
    const first = ok(await deliver(w, 0, [serviceEvent(1), serviceEvent(2)]));
    expect(first.value).toEqual({ handled: 2 });
    expect(first.events.map((e) => e.data)).toEqual([{ id: "ev-1" }, { id: "ev-2" }]);
    const again = ok(await deliver(w, 0, [serviceEvent(2), serviceEvent(3)]));
    expect(again.value).toEqual({ handled: 2 });
    expect(again.events.map((e) => e.data)).toEqual([{ id: "ev-3" }]);
    expect(w.read("SELECT id FROM seen ORDER BY rowid")).toEqual([{ id: "ev-1" }, { id: "ev-2" }, { id: "ev-3" }]);
  });

  test("a batch stops at the first failure: how many were handled, the error, and the handled ones' events", async () => {
    const w = await open();
    const r = ok(await deliver(w, 0, [serviceEvent(1), serviceEvent(2, { fail: true }), serviceEvent(3)]));
    expect(r.value as DeliveryOutcome).toEqual({
      handled: 1,
      error: { code: "PLT_HANDLER_ERROR", message: "w: subscription in/x failed", status: 500, retryable: false },
    });
    expect(r.events.map((e) => e.data)).toEqual([{ id: "ev-1" }]);
    expect(w.read("SELECT id FROM seen")).toEqual([{ id: "ev-1" }]);
  });

  test("a single event (t: event) runs the subscription handler and answers with its events", async () => {
    const w = await open();
    const r = ok(await w.request({ t: "event", subscription: 0, topic: "in/one", event: serviceEvent(5) }));
    expect(r.events.map((e) => e.type)).toEqual(["handled"]);
    expect(w.read("SELECT id, topic FROM seen")).toEqual([{ id: "ev-5", topic: "in/one" }]);
    expect((await w.error({ t: "event", subscription: 0, topic: "in/one", event: serviceEvent(6, { fail: true }) })).message).toBe("w: subscription in/one failed");
  });

  test("a subscription's batches run one at a time, in order; another subscription's do not wait", async () => {
    const w = await open();
    const from = w.received.length;
    const heldFirst = w.post({ t: "deliver", subscription: 1, items: [{ topic: "held/1", event: serviceEvent(1) }] });
    const heldSecond = w.post({ t: "deliver", subscription: 1, items: [{ topic: "held/2", event: serviceEvent(2) }] });
    const call = await w.next((m): m is Extract<WorkerMessage, { t: "call" }> => m.t === "call", from);
    expect(call.params).toEqual({ id: "ev-1" });
    // The other subscription is served while the first batch waits.
    expect(ok(await deliver(w, 0, [serviceEvent(1)])).value).toEqual({ handled: 1 });
    await w.roundTrip();
    expect(w.received.filter((m) => m.t === "call")).toHaveLength(1); // the second batch has not started
    w.send({ t: "reply", id: call.id, ok: true, value: null });
    expect(ok(await w.result(heldFirst)).value).toEqual({ handled: 1 });
    const second = await w.next((m): m is Extract<WorkerMessage, { t: "call" }> => m.t === "call" && m.id !== call.id, from);
    expect(second.params).toEqual({ id: "ev-2" });
    w.send({ t: "reply", id: second.id, ok: true, value: null });
    expect(ok(await w.result(heldSecond)).value).toEqual({ handled: 1 });
    expect(w.read("SELECT topic FROM seen WHERE topic LIKE 'held/%' ORDER BY rowid")).toEqual([{ topic: "held/1" }, { topic: "held/2" }]);
  });

  test("a batch that failed does not hold the next one", async () => {
    const w = await open();
    const failing = w.post({ t: "deliver", subscription: 1, items: [{ topic: "held/1", event: serviceEvent(1) }] });
    const call = await w.next((m): m is Extract<WorkerMessage, { t: "call" }> => m.t === "call", 0);
    const next = w.post({ t: "deliver", subscription: 1, items: [{ topic: "held/2", event: serviceEvent(2) }] });
    w.send({ t: "reply", id: call.id, ok: false, error: { code: "PLT_TIMEOUT", message: "gate shut", status: 504, retryable: true } });
    expect((ok(await w.result(failing)).value as DeliveryOutcome).error?.code).toBe("PLT_TIMEOUT");
    const second = await w.next((m): m is Extract<WorkerMessage, { t: "call" }> => m.t === "call" && m.id !== call.id, 0);
    w.send({ t: "reply", id: second.id, ok: true, value: null });
    expect(ok(await w.result(next)).value).toEqual({ handled: 1 });
  });

  test("bury stores a dead letter and moves the cursor past it; redrive runs it again and forgets it", async () => {
    const w = await open();
    const event = serviceEvent(4, { fail: false });
    ok(await w.request({ t: "bury", subscription: 0, topic: "in/x", event, error: "gave up", attempts: 5 }));
    const letters = ok(await w.request({ t: "deadletters" })).value as Array<Record<string, unknown>>;
    expect(letters).toEqual([
      expect.objectContaining({ id: 1, subscription: "in/#", topic: "in/x", source: "orders", seq: 4, event, error: "gave up", attempts: 5 }),
    ]);
    // The cursor is past it: delivered again, it is skipped.
    expect(ok(await deliver(w, 0, [event])).events).toEqual([]);
    const redriven = ok(await w.request({ t: "redrive", letter: 1 }));
    expect(redriven.events.map((e) => e.data)).toEqual([{ id: "ev-4" }]);
    expect(ok(await w.request({ t: "deadletters" })).value).toEqual([]);
    expect((await w.error({ t: "redrive", letter: 1 })).code).toBe("PLT_NOT_FOUND");
  });

  test("bury of an event handled meanwhile stores nothing; bury of an unknown subscription fails its request", async () => {
    const w = await open();
    ok(await deliver(w, 0, [serviceEvent(1)]));
    ok(await w.request({ t: "bury", subscription: 0, topic: "in/x", event: serviceEvent(1), error: "late", attempts: 3 }));
    expect(ok(await w.request({ t: "deadletters" })).value).toEqual([]);
    // Not a service's event (no place in a log): nothing to bury either.
    ok(await w.request({ t: "bury", subscription: 0, topic: "in/x", event: { ...serviceEvent(2), source: "mqtt" }, error: "x", attempts: 1 }));
    expect(ok(await w.request({ t: "deadletters" })).value).toEqual([]);
    expect((await w.error({ t: "bury", subscription: 7, topic: "in/x", event: serviceEvent(2), error: "x", attempts: 1 })).code).toBe("PLT_HANDLER_ERROR");
  });
});

describe("storage faults", () => {
  test("a full store: PLT_STORAGE_FULL and a storage report; once writes commit again, a report of recovery and the unsent rows relayed", async () => {
    const w = await open();
    ok(await w.action("emit", ["before"]));
    // Its events port comes after "before" was committed: only the relay can publish it.
    ok(await w.action("full"));
    let refused: WorkerMessage | undefined;
    for (let i = 0; i < 50 && !refused; i++) {
      const r = await w.action("write");
      if (!r.ok) refused = r;
    }
    expect(refused).toMatchObject({ ok: false, error: { code: "PLT_STORAGE_FULL", status: 507, retryable: true } });
    const fault = w.received.find((m): m is Extract<WorkerMessage, { t: "storage" }> => m.t === "storage");
    expect(fault?.fault).toMatchObject({ reason: "disk full", code: "PLT_STORAGE_FULL" });

    ok(await w.action("room"));
    w.attachPort();
    const from = w.received.length;
    ok(await w.action("write"));
    const recovered = await w.next((m) => m.t === "storage", from);
    expect(recovered).toEqual({ t: "storage", fault: null });
    // The write's own event at its answer, then, once that batch is answered, the relay: every row
    // not acked, the ones written before the fault included.
    expect((await w.nextBatch(0)).map((e) => e.type)).toEqual(["written"]);
    w.ack(w.published[0]!.map((e) => e.seq));
    const relayed: CommittedEvent[] = await w.nextBatch(1);
    expect(relayed[0]!.type).toBe("before");
    expect([...relayed, ...w.published[0]!].map((e) => e.seq).toSorted((a, b) => a - b)).toEqual(w.outbox().map((r) => r.seq));
  });
});

describe("answers, stops and turns at the edges", () => {
  test("a request whose group fails at its commit fails (generic, naming it); its writes and events are not kept", async () => {
    const w = await open();
    ok(await w.action("fkOn"));
    expect(await w.error({ t: "action", action: "orphan", params: null, caller: null })).toEqual({
      code: "PLT_HANDLER_ERROR",
      message: "w: action orphan failed",
      status: 500,
      retryable: false,
    });
    expect(w.outbox()).toEqual([]);
    expect(w.read("SELECT count(*) AS n FROM children")).toEqual([{ n: 0 }]);
  });

  test("stop before the database was opened still says stopped", async () => {
    const w = new RawWorker(pluginPath, newDataDir());
    workers.push(w);
    expect((await w.init()).t).toBe("loaded");
    await w.stop();
    expect(w.received.at(-1)).toEqual({ t: "stopped" });
  });

  test("a database that cannot be opened fails open with PLT_PLUGIN_LOAD", async () => {
    const dataDir = newDataDir();
    const w = new RawWorker(pluginPath, dataDir);
    workers.push(w);
    mkdirSync(`${dataDir}/w.sqlite`);
    expect((await w.init()).t).toBe("loaded");
    const failed = await w.openDatabase();
    expect(failed.t === "failed" && failed.error.code).toBe("PLT_PLUGIN_LOAD");
  });

  test("a built-in service loads by name", async () => {
    const w = new RawWorker(pluginPath, newDataDir());
    workers.push(w);
    const from = w.sendAndMark({
      t: "init",
      source: { kind: "builtin", name: "platform" },
      dataDir: w.dataDir,
      retainSent: 1,
      retainSentMs: null,
      groupCommitMs: 0,
      store: { durability: "normal" },
      logLevel: "silent",
      logFormat: "json",
    });
    const loaded = await w.next((m) => m.t === "loaded" || m.t === "failed", from);
    expect(loaded).toMatchObject({ t: "loaded", manifest: { name: "platform" } });
  });

  const deliver = (w: RawWorker, subscription: number, events: CloudEvent[], topic = "in/x") =>
    w.request({ t: "deliver", subscription, items: events.map((event) => ({ topic, event })) });

  test("a single event (t: event) checks the cursor too: one handled already is not handled again", async () => {
    const w = await open();
    ok(await deliver(w, 0, [serviceEvent(1)]));
    expect(ok(await w.request({ t: "event", subscription: 0, topic: "in/x", event: serviceEvent(1) })).events).toEqual([]);
    expect(w.read("SELECT id FROM seen")).toEqual([{ id: "ev-1" }]);
  });

  test("a bury's and a listing's answers carry no events; a bury that fails names the dead letter's topic; a redrive that fails names its letter", async () => {
    const w = await open();
    expect(ok(await w.request({ t: "bury", subscription: 0, topic: "in/x", event: serviceEvent(3, { fail: true }), error: "gave up", attempts: 2 })).events).toEqual([]);
    expect(ok(await w.request({ t: "deadletters" })).events).toEqual([]);
    expect((await w.error({ t: "bury", subscription: 7, topic: "in/x", event: serviceEvent(2), error: "x", attempts: 1 })).message).toBe("w: dead letter for in/x failed");
    expect((await w.error({ t: "redrive", letter: 1 })).message).toBe("w: redrive 1 failed");
  });

  test("a subscription's third batch waits for its second, also once the first is done", async () => {
    const w = await open();
    const calls = () => w.received.filter((m): m is Extract<WorkerMessage, { t: "call" }> => m.t === "call");
    const first = w.post({ t: "deliver", subscription: 1, items: [{ topic: "held/1", event: serviceEvent(1) }] });
    const second = w.post({ t: "deliver", subscription: 1, items: [{ topic: "held/2", event: serviceEvent(2) }] });
    await w.next((m) => m.t === "call", 0);
    w.send({ t: "reply", id: calls()[0]!.id, ok: true, value: null });
    ok(await w.result(first));
    await w.next((m) => m.t === "call" && calls().length === 2, 0);
    const third = w.post({ t: "deliver", subscription: 1, items: [{ topic: "held/3", event: serviceEvent(3) }] });
    await w.roundTrip();
    expect(calls().map((c) => c.params)).toEqual([{ id: "ev-1" }, { id: "ev-2" }]); // the third has not started
    w.send({ t: "reply", id: calls()[1]!.id, ok: true, value: null });
    ok(await w.result(second));
    await w.next((m) => m.t === "call" && calls().length === 3, 0);
    w.send({ t: "reply", id: calls()[2]!.id, ok: true, value: null });
    ok(await w.result(third));
    expect(w.read("SELECT topic FROM seen ORDER BY rowid")).toEqual([{ topic: "held/1" }, { topic: "held/2" }, { topic: "held/3" }]);
  });
});

describe("storage faults and acks", () => {
  /** Fills the store until a write is refused; resolves once the fault was reported. */
  async function degrade(w: RawWorker): Promise<void> {
    ok(await w.action("full"));
    for (let i = 0; i < 50; i++) if (!(await w.action("write")).ok) break;
    await w.next((m) => m.t === "storage", 0);
  }

  test("acks written on their own are a write that went through: the store reports it is back", async () => {
    const w = await open();
    w.attachPort();
    ok(await w.action("emit", ["a"]));
    await w.nextBatch(0);
    await degrade(w);
    ok(await w.action("room"));
    const from = w.received.length;
    w.ack([1]);
    expect(await w.next((m) => m.t === "storage", from)).toEqual({ t: "storage", fault: null });
    expect(w.outbox()[0]).toMatchObject({ type: "a", sent: true });
  });

  test("acks that cannot be written on their own report the fault, and nothing is relayed until the store is back", async () => {
    const w = await open();
    const n = 2_000;
    w.attachPort();
    ok(await w.action("emit", Array.from({ length: n }, (_, i) => `e${i}`)));
    await w.nextBatch(0);
    ok(await w.action("full"));
    const from = w.received.length;
    // Every other row: a thousand ranges of sent seqs, more than the full file has room for.
    w.ack(Array.from({ length: n / 2 }, (_, i) => 2 * i + 1));
    const fault = await w.next((m): m is Extract<WorkerMessage, { t: "storage" }> => m.t === "storage", from);
    expect(fault.fault).toMatchObject({ reason: "disk full", code: "PLT_STORAGE_FULL" });
    // A timer of the worker's own set after the report: a relay on a turn of its own would have come before it.
    ok(await w.action("tick"));
    expect(w.published).toHaveLength(1);
    expect(w.outbox().filter((r) => r.sent)).toEqual([]);
  });
});

