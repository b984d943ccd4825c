/** Bench plugin: an echo route, a write (INSERT + event), the same INSERT alone, INSERT + SELECT with and without one event, and a read. */
import { definePlugin, route, t } from "plinth";

export default definePlugin({
  name: "bench",
  version: "1.0.0",
  migrations: ["CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT NOT NULL)"],
  actions: {
    echo: (ctx) => ctx.params,
  },
  routes: {
    "GET /echo": () => ({ ok: true }),
    // The same answer behind every gateway policy: a token, a rate limit and query validation.
    "GET /guarded": route({
      auth: "authenticated",
      rateLimit: { limit: 1_000_000_000, windowMs: 1_000 },
      query: t.Object({ n: t.Integer({ minimum: 0 }) }),
      handler: () => ({ ok: true }),
    }),
    // The same answer from the gateway's response cache.
    "GET /cached": route({ cache: { ttlMs: 3_600_000 }, handler: () => ({ ok: true }) }),
    // A → B: one more hop through the main thread to another worker.
    "GET /chain": (ctx) => ctx.call("bench2.echo", true),
    "POST /items": route({
      body: t.Object({ v: t.String() }),
      handler(ctx) {
        const row = ctx.db.query("INSERT INTO items (v) VALUES (?) RETURNING id").get(ctx.body.v);
        ctx.emit("created", row);
        return row;
      },
    }),
    // The same INSERT without an event: the write path alone (what one commit costs, durability.ts).
    "POST /write": route({
      body: t.Object({ v: t.String() }),
      handler: (ctx) => ctx.db.query("INSERT INTO items (v) VALUES (?) RETURNING id").get(ctx.body.v),
    }),
    // INSERT, then SELECT of the row written, no event: the write path the Moleculer baseline
    // (tests/bench/baselines/moleculer.mjs) matches, and what /insert-select-emit adds an event to
    // (events-write.ts).
    "POST /insert-select": route({
      body: t.Object({ v: t.String() }),
      handler(ctx) {
        const { lastInsertRowid } = ctx.db.query("INSERT INTO items (v) VALUES (?)").run(ctx.body.v);
        return ctx.db.query("SELECT * FROM items WHERE id = ?").get(lastInsertRowid);
      },
    }),
    // The same INSERT and SELECT and exactly one ctx.emit, in the same transaction.
    "POST /insert-select-emit": route({
      body: t.Object({ v: t.String() }),
      handler(ctx) {
        const { lastInsertRowid } = ctx.db.query("INSERT INTO items (v) VALUES (?)").run(ctx.body.v);
        const row = ctx.db.query("SELECT * FROM items WHERE id = ?").get(lastInsertRowid);
        ctx.emit("created", row);
        return row;
      },
    }),
    // The same request without an event: what durability costs is the difference to /tick.
    "POST /noop": () => {},
    // One committed event per request, stamped with a wall clock shared across processes.
    "POST /tick": (ctx) => {
      ctx.emit("tick", { sentAt: performance.timeOrigin + performance.now() });
    },
    // 100 events in one commit: the event pipeline without one HTTP request per event.
    "POST /burst": (ctx) => {
      const sentAt = performance.timeOrigin + performance.now();
      for (let i = 0; i < 100; i++) ctx.emit("burst", { sentAt, i });
    },
    "GET /items/:id": (ctx) => ctx.db.query("SELECT * FROM items WHERE id = ?").get(Number(ctx.params.id)),
  },
});
