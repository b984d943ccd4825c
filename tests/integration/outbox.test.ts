/**
 * The transactional outbox end to end, in process: committed events are
 * marked sent once published, events committed but never published (a
 * crash between commit and publish) are published at the next start, and
 * events the broker refused (its store turned read-only) stay unsent and are
 * published again once it takes writes, to each subscriber once.
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { Database } from "bun:sqlite";
import { join } from "node:path";
import { boot, type Booted, ON_MAIN_THREAD, inside } from "../helpers/boot";
import { connectMqtt, eventually, type TestClient } from "../helpers/mqtt";
import { tempDir } from "../helpers/tmp";

const sink = `import { definePlugin } from "plinth";
export default definePlugin({
  name: "sink", version: "1.0.0",
  migrations: ["CREATE TABLE seen (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE, type TEXT)"],
  subscribe: { "events/emitter/#": (ctx) => { ctx.db.query("INSERT INTO seen (id, type) VALUES (?, ?) ON CONFLICT DO NOTHING").run(ctx.event.id, ctx.event.type); } },
  routes: { "GET /": (ctx) => ctx.db.query("SELECT id, type FROM seen ORDER BY seq").all() },
});`;

// Each test boots a platform (two, for those that restart one): seconds on a busy machine.
setDefaultTimeout(30_000);

type Row = { seq: number; id: string; sent: number };
const outboxRows = (dataDir: string) => {
  const db = new Database(join(dataDir, "emitter.sqlite"), { readonly: true });
  try {
    return db.query("SELECT seq, id, sent FROM _plinth_outbox_state ORDER BY seq").all() as Row[];
  } finally {
    db.close();
  }
};

test("a published event's outbox row is marked sent", async () => {
  await using p = await boot({ fixtures: ["emitter"] });
  await using sub = await connectMqtt(p.mqttUrl);
  await sub.subscribe("events/emitter/#");
  expect((await p.req("/api/emitter", { json: { type: "made", data: { n: 1 } } })).status).toBe(200);
  const event = (await sub.next()).json();
  const rows = await eventually(() => {
    const all = outboxRows(p.dataDir);
    return all.length === 1 && all[0]!.sent === 1 ? all : null;
  });
  expect(rows[0]!.id).toBe(event.id);

  const log = (await (await p.req("/api/platform/events?service=emitter")).json()) as Array<Record<string, unknown>>;
  expect(log).toEqual([{ ...event, topic: "events/emitter/made" }]);
  expect(event.sequence).toBe("1");
  expect(await (await p.req("/api/platform/events?service=emitter&after=1")).json()).toEqual([]);
  expect((await p.req("/api/platform/events?service=emitter&limit=0")).status).toBe(400);
  expect((await p.req("/api/platform/events?service=ghost")).status).toBe(404);
});

test("events committed but never published are published, in order, at the next start", async () => {
  using data = tempDir("plinth-outbox");
  // First run: create the emitter's database, then stop.
  const first = await boot({ fixtures: ["emitter"] }, { data: { dir: data.path } });
  await first.stop();

  // What a crash between commit and publish leaves behind: committed rows never marked sent.
  const db = new Database(join(data.path, "emitter.sqlite"), { strict: true });
  const ids = ["01900000-0000-7000-8000-000000000001", "01900000-0000-7000-8000-000000000002", "01900000-0000-7000-8000-000000000003"];
  for (const [i, id] of ids.entries()) {
    db.query("INSERT INTO _plinth_outbox (id, type, time, data) VALUES (?, ?, ?, ?)").run(id, `crash/${i}`, new Date().toISOString(), JSON.stringify({ i }));
  }
  db.close();

  await using second = await boot({ fixtures: ["emitter"], files: { "sink.ts": sink } }, { data: { dir: data.path } });
  const seen = await eventually(async () => {
    const rows = (await (await second.req("/api/sink")).json()) as Array<{ id: string; type: string }>;
    return rows.length === 3 ? rows : null;
  });
  expect(seen).toEqual(ids.map((id, i) => ({ id, type: `emitter.crash.${i}` })));
  await eventually(() => outboxRows(data.path).every((r) => r.sent === 1));
});

test("events a handler committed are published even when its caller stopped waiting", async () => {
  const late = `import { definePlugin } from "plinth";
export default definePlugin({ name: "late", version: "1.0.0", routes: {
  "POST /": async (ctx) => { await Bun.sleep(300); ctx.emit("done", { late: true }); return { late: true }; },
} });`;
  await using p = await boot({ files: { "late.ts": late } }, { gateway: { requestTimeoutMs: 100 } });
  await using sub = await connectMqtt(p.mqttUrl);
  await sub.subscribe("events/late/#");
  expect((await p.req("/api/late", { method: "POST" })).status).toBe(504);
  expect((await sub.next((m) => m.topic === "events/late/done", 3_000)).json().data).toEqual({ late: true });
});

/** Counts every delivery, without deduplication: an event handled twice shows as two rows. */
const counter = `import { definePlugin } from "plinth";
export default definePlugin({
  name: "counter", version: "1.0.0",
  migrations: ["CREATE TABLE seen (n INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, type TEXT NOT NULL)"],
  subscribe: { "events/emitter/#": (ctx) => { ctx.db.query("INSERT INTO seen (id, type) VALUES (?, ?)").run(ctx.event.id, ctx.event.type); } },
  routes: { "GET /": (ctx) => ctx.db.query("SELECT id, type FROM seen ORDER BY n").all() },
});`;

interface BrokerHealth {
  broker: { storage: "ok" | { reason: string } };
}

/** The broker's own SQLite connection: `PRAGMA query_only` makes its store refuse every write (SQLITE_READONLY), as a read-only disk does. */
const brokerStore = (p: Booted) => (inside(p).aedes as unknown as { persistence: { db: Database } }).persistence.db;

/** Resolves once /health says the broker's store refused a write (what a refused publish leaves). */
const brokerRefused = (p: Booted) =>
  eventually(async () => {
    const { storage } = ((await (await p.req("/health")).json()) as BrokerHealth).broker;
    return typeof storage === "object" && storage.reason === "read-only";
  });

const emitted = async (p: Booted, type: string) => {
  const res = await p.req("/api/emitter", { json: { type } });
  expect(res.status).toBe(200);
};

/** How many times each event type reached an MQTT client, by type. */
const countsOf = (c: TestClient) => {
  const counts: Record<string, number> = {};
  for (const m of c.received) {
    const type = (m.json() as { type: string }).type;
    counts[type] = (counts[type] ?? 0) + 1;
  }
  return counts;
};

test("events the broker's store refused stay unsent in the service's file and are published again once it takes writes, without a restart: each subscriber gets each event once", async () => {
  await using p = await boot({ fixtures: ["emitter"], files: { "counter.ts": counter } }, {}, ON_MAIN_THREAD);
  // A persistent session, offline: the broker must write each event into its store for it.
  const keeperId = `keeper-${crypto.randomUUID()}`;
  const keeper = await connectMqtt(p.mqttUrl, { clientId: keeperId, clean: false });
  await keeper.subscribe("events/emitter/#", 1);
  await keeper.end();
  await using live = await connectMqtt(p.mqttUrl);
  await live.subscribe("events/emitter/#", 1);

  const store = brokerStore(p);
  store.exec("PRAGMA query_only = ON");
  await emitted(p, "kept/1");
  await emitted(p, "kept/2");
  await brokerRefused(p);
  // A request to the service after the refusals: its commit carries any ack the host had sent by then.
  expect((await p.req("/api/emitter", { json: { type: "undone", fail: true } })).status).toBe(500);
  // Committed, refused by the broker: not sent, and no client heard them.
  expect(outboxRows(p.dataDir).map((r) => r.sent)).toEqual([0, 0]);
  expect(live.received).toEqual([]);

  store.exec("PRAGMA query_only = OFF");
  await live.next((m) => m.topic === "events/emitter/kept/1");
  await live.next((m) => m.topic === "events/emitter/kept/2");
  await eventually(() => outboxRows(p.dataDir).every((r) => r.sent === 1));

  // A last event, published after the relayed ones: once it arrives, anything sent twice would have too.
  await emitted(p, "sentinel");
  await live.next((m) => m.topic === "events/emitter/sentinel");
  await using back = await connectMqtt(p.mqttUrl, { clientId: keeperId, clean: false });
  await back.next((m) => m.topic === "events/emitter/sentinel");
  const handled = await eventually(async () => {
    const rows = (await (await p.req("/api/counter")).json()) as Array<{ type: string }>;
    return rows.some((r) => r.type === "emitter.sentinel") ? rows : null;
  });

  const once = { "emitter.kept.1": 1, "emitter.kept.2": 1, "emitter.sentinel": 1 };
  expect(countsOf(live)).toEqual(once);
  expect(countsOf(back)).toEqual(once);
  expect(handled.map((r) => r.type)).toEqual(["emitter.kept.1", "emitter.kept.2", "emitter.sentinel"]);
  // The sentinel's ack reaches its row with the next commit, or on its own within the worker's ack delay.
  await eventually(() => outboxRows(p.dataDir).length === 3 && outboxRows(p.dataDir).every((r) => r.sent === 1));
});

test("events the broker's store refused are still unsent after a clean stop, and the next start publishes them", async () => {
  using data = tempDir("plinth-outbox");
  const keeperId = `keeper-${crypto.randomUUID()}`;
  const first = await boot({ fixtures: ["emitter"] }, { data: { dir: data.path } }, ON_MAIN_THREAD);
  try {
    const keeper = await connectMqtt(first.mqttUrl, { clientId: keeperId, clean: false });
    await keeper.subscribe("events/emitter/#", 1);
    await keeper.end();
    brokerStore(first).exec("PRAGMA query_only = ON");
    await emitted(first, "kept/1");
    await emitted(first, "kept/2");
    await brokerRefused(first);
  } finally {
    // A clean stop writes every ack the host received before the service's database closes.
    await first.stop();
  }
  expect(outboxRows(data.path).map((r) => r.sent)).toEqual([0, 0]);

  await using second = await boot({ fixtures: ["emitter"] }, { data: { dir: data.path } }, ON_MAIN_THREAD);
  await using back = await connectMqtt(second.mqttUrl, { clientId: keeperId, clean: false });
  await back.next((m) => m.topic === "events/emitter/kept/2");
  await eventually(() => outboxRows(data.path).every((r) => r.sent === 1));
  await emitted(second, "sentinel");
  await back.next((m) => m.topic === "events/emitter/sentinel");
  expect(countsOf(back)).toEqual({ "emitter.kept.1": 1, "emitter.kept.2": 1, "emitter.sentinel": 1 });
});
