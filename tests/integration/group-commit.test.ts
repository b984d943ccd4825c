/**
 * Group commit end to end (runtime/worker/unit.ts): many concurrent writes to one service, some of
 * which fail, share commits; each request's answer, its rows and its event agree with every other
 * observer: the database, an outside MQTT subscriber, and a subscribing plugin.
 */
import { expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { join } from "node:path";
import { boot } from "../helpers/boot";
import { connectMqtt, eventually } from "../helpers/mqtt";

const notes = `import { definePlugin, route, t } from "plinth";
export default definePlugin({
  name: "notes", version: "1.0.0",
  migrations: ["CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)"],
  routes: {
    "POST /": route({
      body: t.Object({ text: t.String() }),
      handler(ctx) {
        const row = ctx.db.query("INSERT INTO notes (text) VALUES (?) RETURNING id, text").get(ctx.body.text);
        ctx.emit("added", row);
        // Written and emitted, then refused: the row and the event must go with the refusal.
        if (ctx.body.text.startsWith("bad")) throw new Error("refused after writing");
        return row;
      },
    }),
  },
});
`;

const counter = `import { definePlugin } from "plinth";
export default definePlugin({
  name: "counter", version: "1.0.0",
  migrations: ["CREATE TABLE seen (text TEXT PRIMARY KEY)"],
  subscribe: { "events/notes/#": (ctx) => void ctx.db.query("INSERT INTO seen (text) VALUES (?)").run(ctx.event.data.text) },
  routes: { "GET /": (ctx) => ctx.db.query("SELECT text FROM seen ORDER BY text").all().map((r) => r.text) },
});
`;

test("concurrent writes, some failing, in shared commits: answers, rows and events agree", { timeout: 20_000 }, async () => {
  await using p = await boot({ files: { "notes.ts": notes, "counter.ts": counter } });
  await using sub = await connectMqtt(p.mqttUrl);
  await sub.subscribe("events/notes/#");

  const texts = Array.from({ length: 300 }, (_, i) => (i % 7 === 3 ? `bad-${i}` : `good-${i}`));
  const answers = await Promise.all(texts.map((text) => p.req("/api/notes", { json: { text } }).then((r) => r.status)));
  const good = texts.filter((t) => t.startsWith("good")).sort();
  expect(answers.filter((s) => s === 200)).toHaveLength(good.length);
  expect(answers.filter((s) => s === 500)).toHaveLength(texts.length - good.length);

  const db = new Database(join(p.dataDir, "notes.sqlite"), { readonly: true });
  try {
    expect((db.query("SELECT text FROM notes ORDER BY text").all() as Array<{ text: string }>).map((r) => r.text)).toEqual(good);
    const events = db.query("SELECT seq, data FROM _plinth_outbox ORDER BY seq").all() as Array<{ seq: number; data: string }>;
    expect(events.map((e) => (JSON.parse(e.data) as { text: string }).text).sort()).toEqual(good);
    // One event per committed write, numbered without gaps in commit order.
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => events[0]!.seq + i));
  } finally {
    db.close();
  }

  await eventually(() => sub.received.length >= good.length, 10_000);
  expect(sub.received.map((m) => m.json<{ data: { text: string } }>().data.text).sort()).toEqual(good);
  const counted = await eventually(async () => {
    const seen = (await (await p.req("/api/counter")).json()) as string[];
    return seen.length === good.length ? seen : null;
  }, 10_000);
  expect(counted).toEqual(good);
});
