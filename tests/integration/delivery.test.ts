/**
 * Durable delivery between services, across real restarts of the platform on
 * the same data folder: a subscriber that was down gets what it missed, in
 * order and once; a poison event is dead-lettered without blocking the events
 * behind it, and re-driven once the subscriber is fixed.
 */
import { expect, test } from "bun:test";
import { boot, NO_BREAKER } from "../helpers/boot";
import { eventually } from "../helpers/mqtt";
import { tempDir } from "../helpers/tmp";

const sink = `import { definePlugin, PlinthError } from "plinth";
export default definePlugin({
  name: "sink", version: "1.0.0",
  migrations: [
    "CREATE TABLE seen (n INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, type TEXT NOT NULL)",
    "CREATE TABLE settings (fixed INTEGER NOT NULL)", "INSERT INTO settings VALUES (0)",
  ],
  subscribe: {
    "events/emitter/#": (ctx) => {
      const fixed = (ctx.db.query("SELECT fixed FROM settings").get() as { fixed: number }).fixed;
      if ((ctx.event.data as { poison?: boolean } | null)?.poison && !fixed) throw new PlinthError("SINK_POISON", "cannot digest this");
      ctx.db.query("INSERT INTO seen (id, type) VALUES (?, ?)").run(ctx.event.id, ctx.event.type);
    },
  },
  routes: {
    "GET /": (ctx) => ctx.db.query("SELECT type FROM seen ORDER BY n").all().map((r) => (r as { type: string }).type),
    "POST /fix": (ctx) => { ctx.db.query("UPDATE settings SET fixed = 1").run(); return { fixed: true }; },
  },
});`;

/** The sink with an async handler that takes `ms` per event before it writes. */
const slowSink = (ms: number) =>
  sink.replace(`"events/emitter/#": (ctx) => {`, `"events/emitter/#": async (ctx) => {
      await Bun.sleep(${ms});`);

type Platform = { req: (path: string, init?: RequestInit & { json?: unknown }) => Promise<Response> };

/**
 * Emits one event, then a sentinel, and checks the sink handled the first exactly once and
 * dead-lettered nothing: events reach a subscriber in order, so once the sentinel is handled,
 * whatever would have come of the first (a second handling, a dead letter) has.
 */
async function handledOnceNoLetter(p: Platform): Promise<void> {
  await emit(p, "slow");
  expect(await afterSentinel(p, 10_000)).toEqual(["emitter.slow"]);
  expect(await (await p.req("/api/platform/deadletters/sink")).json()).toEqual([]);
}

const emit = async (p: Platform, type: string, data: unknown = {}) => {
  const res = await p.req("/api/emitter", { json: { type, data } });
  expect(res.status).toBe(200);
};

const seenBySink = async (p: Platform) => (await (await p.req("/api/sink")).json()) as string[];

/**
 * Emits a sentinel event and resolves with what the sink had handled before it, once it has handled
 * the sentinel: events reach a subscriber in the order they were emitted, so anything more (a
 * duplicate) the earlier ones would cause has come by then.
 */
async function afterSentinel(p: Platform, timeoutMs = 5_000): Promise<string[]> {
  await emit(p, "sentinel");
  const seen = await eventually(async () => {
    const list = await seenBySink(p);
    return list.includes("emitter.sentinel") ? list : null;
  }, timeoutMs);
  expect(seen.at(-1)).toBe("emitter.sentinel");
  return seen.slice(0, -1);
}

test("a subscriber that was stopped gets every event it missed, in order, and none twice", async () => {
  using data = tempDir("plinth-delivery");
  const overrides = { data: { dir: data.path } };

  const first = await boot({ fixtures: ["emitter"], files: { "sink.ts": sink } }, overrides);
  await emit(first, "e1");
  await emit(first, "e2");
  await eventually(async () => ((await (await first.req("/api/sink")).json()) as string[]).length === 2);
  await first.stop();

  // The subscriber is not running while these are emitted.
  const second = await boot({ fixtures: ["emitter"] }, overrides);
  for (const type of ["e3", "e4", "e5"]) await emit(second, type);
  await second.stop();

  await using third = await boot({ fixtures: ["emitter"], files: { "sink.ts": sink } }, overrides);
  await emit(third, "e6");
  expect(await afterSentinel(third)).toEqual(["e1", "e2", "e3", "e4", "e5", "e6"].map((e) => `emitter.${e}`));
}, 20_000);

test("a poison event is dead-lettered after maxAttempts, does not block the next, and re-drives once fixed", async () => {
  await using p = await boot(
    { fixtures: ["emitter"], files: { "sink.ts": sink } },
    { events: { maxAttempts: 3, retryDelayMs: 20 } },
  );
  const started = performance.now();
  await emit(p, "bad", { poison: true });
  await emit(p, "good");
  await eventually(async () => ((await (await p.req("/api/sink")).json()) as string[]).includes("emitter.good"));
  // three attempts with 20 ms then 40 ms between them: the good event waited about 60 ms, not forever
  expect(performance.now() - started).toBeLessThan(2_000);
  expect(await (await p.req("/api/sink")).json()).toEqual(["emitter.good"]);

  const letters = (await (await p.req("/api/platform/deadletters/sink")).json()) as Array<{
    id: number;
    subscription: string;
    source: string;
    attempts: number;
    error: string;
    event: { type: string; data: unknown };
  }>;
  expect(letters).toHaveLength(1);
  expect(letters[0]).toMatchObject({
    subscription: "events/emitter/#",
    source: "emitter",
    attempts: 3,
    error: "cannot digest this",
    event: { type: "emitter.bad", data: { poison: true } },
  });

  // Re-drive before the fix fails and keeps the letter; after the fix it is handled once and removed.
  const early = await p.req(`/api/platform/deadletters/sink/${letters[0]!.id}/redrive`, { method: "POST" });
  expect(early.status).toBe(500);
  expect(((await early.json()) as { error: { code: string } }).error.code).toBe("SINK_POISON");
  expect((await p.req("/api/sink/fix", { method: "POST" })).status).toBe(200);
  const redriven = await p.req(`/api/platform/deadletters/sink/${letters[0]!.id}/redrive`, { method: "POST" });
  expect(redriven.status).toBe(200);
  expect(await redriven.json()).toEqual({ redriven: letters[0]!.id });
  expect(await (await p.req("/api/sink")).json()).toEqual(["emitter.good", "emitter.bad"]);
  expect(await (await p.req("/api/platform/deadletters/sink")).json()).toEqual([]);
  expect((await p.req("/api/platform/deadletters/ghost")).status).toBe(404);
});

test("events emitted while a subscriber crashes and restarts reach it once it is back", async () => {
  const fragile = sink.replace(
    `ctx.db.query("INSERT INTO seen (id, type) VALUES (?, ?)").run(ctx.event.id, ctx.event.type);`,
    `ctx.db.query("INSERT INTO seen (id, type) VALUES (?, ?)").run(ctx.event.id, ctx.event.type);
      if (ctx.event.type === "emitter.crash") setTimeout(() => { throw new Error("subscriber crashed"); }, 0);`,
  );
  // Polling the sink while it restarts gets 503s, which would open its breaker: keep it out of this test.
  await using p = await boot(
    { fixtures: ["emitter"], files: { "sink.ts": fragile } },
    { workers: { restartDelayMs: 50 }, breaker: NO_BREAKER },
  );
  await emit(p, "crash");
  for (const type of ["a", "b", "c"]) await emit(p, type);
  const seen = await eventually(async () => {
    const list = (await (await p.req("/api/sink")).json()) as string[];
    return list.length >= 4 ? list : null;
  }, 10_000);
  expect(seen).toEqual(["emitter.crash", "emitter.a", "emitter.b", "emitter.c"]);
  const services = (await (await p.req("/api/platform/services")).json()) as { services: Array<{ name: string; restarts: number }> };
  expect(services.services.find((s) => s.name === "sink")?.restarts).toBe(1);
});

test("events emitted while the subscriber is being replaced reach it once, in order", async () => {
  await using p = await boot({ fixtures: ["emitter"], files: { "sink.ts": sink } });
  const { writeFileSync } = await import("node:fs");
  const { join } = await import("node:path");
  const types: string[] = [];
  for (let i = 0; i < 60; i++) {
    if (i === 20) writeFileSync(join(p.pluginsDir, "sink.ts"), `${sink}\n// version 2\n`);
    types.push(`emitter.n${i}`);
    await emit(p, `n${i}`);
    if (i >= 20 && i < 40) await Bun.sleep(5); // spread the emits over the replacement
  }
  expect(await afterSentinel(p, 10_000)).toEqual(types);
});

test("a batch still being handled by the replaced subscriber is not handed to its replacement too", async () => {
  // An async handler (its cursor moves when it returns) that takes 20 ms an event: the replacement
  // comes while a batch is in the old worker's hands.
  const slow = slowSink(20);
  await using p = await boot({ fixtures: ["emitter"], files: { "sink.ts": slow } });
  const { writeFileSync } = await import("node:fs");
  const { join } = await import("node:path");
  const types = Array.from({ length: 20 }, (_, i) => `emitter.s${i}`);
  for (const type of types) await emit(p, type.slice("emitter.".length));
  writeFileSync(join(p.pluginsDir, "sink.ts"), `${slow}\n// version 2\n`);
  expect(await afterSentinel(p, 10_000)).toEqual(types);
});

test("a batch sent again after the host stopped waiting for it (a timeout) is not handled twice while the first is still running", async () => {
  // 500 ms per event against a 200 ms call timeout: the host gives up and sends the batch again.
  await using p = await boot({ fixtures: ["emitter"], files: { "sink.ts": slowSink(500) } }, { calls: { timeoutMs: 200 }, events: { retryDelayMs: 10 } });
  await handledOnceNoLetter(p);
});

test("an async subscriber's cursor moves in the transaction that commits its events: if they cannot be committed, the event is retried, then dead-lettered", async () => {
  // A BigInt cannot be stored as JSON: committing the handler's event fails after the handler returned.
  const relay = `import { definePlugin } from "plinth";
export default definePlugin({
  name: "relay", version: "1.0.0",
  subscribe: { "events/emitter/#": async (ctx) => { await Bun.sleep(1); ctx.emit("relayed", { n: 1n }); } },
});`;
  await using p = await boot({ fixtures: ["emitter"], files: { "relay.ts": relay } }, { events: { maxAttempts: 2, retryDelayMs: 10 } });
  await emit(p, "x");
  const letters = await eventually(async () => {
    const list = (await (await p.req("/api/platform/deadletters/relay")).json()) as Array<{ type?: string; event?: { type: string } }>;
    return list.length > 0 ? list : null;
  }, 5_000);
  expect(letters).toHaveLength(1);
});

test("an event given up on while its handler is still running is not also dead-lettered once that handler succeeds", async () => {
  // One attempt of 200 ms for a 500 ms handler: the host gives up and buries the event meanwhile.
  // The worker decides on the dead letter once the handler is done (about 500 ms in).
  await using p = await boot({ fixtures: ["emitter"], files: { "sink.ts": slowSink(500) } }, { calls: { timeoutMs: 200 }, events: { maxAttempts: 1 } });
  await handledOnceNoLetter(p);
});

// The host's request to bury the given-up event times out too (the worker takes it only after the
// running batch): the host asks again after a backoff instead of leaving the events behind it
// waiting for yet another event to start delivery again.
test("an event emitted while the host buries one it gave up on is delivered without another event after it", async () => {
  await using p = await boot({ fixtures: ["emitter"], files: { "sink.ts": slowSink(500) } }, { calls: { timeoutMs: 200 }, events: { maxAttempts: 1 } });
  await emit(p, "slow");
  expect(await afterSentinel(p, 3_000)).toEqual(["emitter.slow"]);
}, 10_000);

test("a subscription's retry counter starts again after progress: an event that fails transiently does not eat the attempts of the next one", async () => {
  // Each event fails twice, then is handled: with three attempts, every one of them gets through.
  const flaky = sink.replace(
    `"events/emitter/#": (ctx) => {`,
    `"events/emitter/#": (ctx) => {
      const tries = (failures.get(ctx.event.id) ?? 0) + 1;
      failures.set(ctx.event.id, tries);
      if (tries <= 2 && ctx.event.type !== "emitter.sentinel") throw new PlinthError("SINK_BUSY", "try again");`,
  ).replace(`export default definePlugin({`, `const failures = new Map<string, number>();
export default definePlugin({`);
  await using p = await boot({ fixtures: ["emitter"], files: { "sink.ts": flaky } }, { events: { maxAttempts: 3, retryDelayMs: 5 } });
  await emit(p, "a");
  await emit(p, "b");
  expect(await afterSentinel(p)).toEqual(["emitter.a", "emitter.b"]);
  expect(await (await p.req("/api/platform/deadletters/sink")).json()).toEqual([]);
});
