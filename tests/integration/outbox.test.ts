/**
 * The transactional outbox end to end, in process: committed events are
 * marked sent once published, and events committed but never published (a
 * crash between commit and publish) are published at the next start.
 */
import { expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { join } from "node:path";
import { boot } from "../helpers/boot";
import { connectMqtt, eventually } from "../helpers/mqtt";
import { tempDir } from "../helpers/tmp";

const sink = `import { definePlugin } from "plinth";
export default definePlugin({
  name: "sink", version: "1.0.0",
  migrations: ["CREATE TABLE seen (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE, type TEXT)"],
  subscribe: { "events/emitter/#": (ctx) => { ctx.db.query("INSERT INTO seen (id, type) VALUES (?, ?) ON CONFLICT DO NOTHING").run(ctx.event.id, ctx.event.type); } },
  routes: { "GET /": (ctx) => ctx.db.query("SELECT id, type FROM seen ORDER BY seq").all() },
});`;

type Row = { seq: number; id: string; sent: number };
const outboxRows = (dataDir: string) => {
  const db = new Database(join(dataDir, "emitter.sqlite"), { readonly: true });
  try {
    return db.query("SELECT seq, id, sent_at IS NOT NULL AS sent FROM _plinth_outbox ORDER BY seq").all() as Row[];
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

  // What a crash between commit and publish leaves behind: committed rows with no sent_at.
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
