/**
 * Call policies on real calls between workers: idempotent retries, fallbacks,
 * one deadline shared by a call chain, and the bulkhead.
 */
import { afterEach, expect, test } from "bun:test";
import { boot, type Booted } from "../helpers/boot";
import { eventually } from "../helpers/eventually";

let p: Booted | undefined;
afterEach(async () => {
  await p?.stop();
  p = undefined;
});

const call = async (body: Record<string, unknown>) => (await p!.req("/api/caller", { json: body })).json();

test("a failed call to an idempotent action is retried; to any other action it is not", async () => {
  p = await boot({ fixtures: ["flaky", "caller"] }, { plugins: { config: { flaky: { failFirst: 2 } } }, calls: { retries: 2, retryDelayMs: 5 } });
  // flaky fails its first two calls: the idempotent action gets there on the third attempt
  expect(await call({ target: "flaky.workIdempotent" })).toEqual({ ok: true, value: { ok: true, calls: 3 } });

  await p.stop();
  p = await boot({ fixtures: ["flaky", "caller"] }, { plugins: { config: { flaky: { failFirst: 2 } } }, calls: { retries: 2, retryDelayMs: 5 } });
  expect(await call({ target: "flaky.work" })).toMatchObject({ ok: false, code: "PLT_HANDLER_ERROR" });
});

test("4xx answers are not retried even for idempotent actions", async () => {
  p = await boot({ fixtures: ["flaky", "caller"] }, { calls: { retries: 3, retryDelayMs: 5 } });
  expect(await call({ target: "flaky.conflict" })).toMatchObject({ ok: false, code: "FLAKY_CONFLICT", status: 409 });
  expect(await (await p.req("/api/flaky/conflicts")).json()).toEqual({ conflicts: 1 });
});

test("a fallback answers instead of the failure", async () => {
  p = await boot({ fixtures: ["flaky", "caller"] }, { plugins: { config: { flaky: { failFirst: 100 } } } });
  expect(await call({ target: "flaky.work", fallback: { cached: true } })).toEqual({ ok: true, value: { cached: true } });
  expect(await call({ target: "ghost.work", fallback: null })).toEqual({ ok: true, value: null });
});

test("a call chain shares one deadline: when the gateway gives up, the next hop never starts", async () => {
  p = await boot({ fixtures: ["chain"] }, { gateway: { requestTimeoutMs: 150 } });
  const started = performance.now();
  const res = await p.req("/api/chain");
  expect(res.status).toBe(504);
  expect(((await res.json()) as { error: { code: string } }).error.code).toBe("PLT_TIMEOUT");
  expect(performance.now() - started).toBeLessThan(1_000);
  // step1 wakes up after 300 ms, tries to call step2, and records when that call has settled.
  const ran = await eventually(async () => {
    const rows = (await (await p!.req("/api/chain/ran")).json()) as Array<{ step: string }>;
    return rows.length > 0 ? rows : null;
  });
  expect(ran).toEqual([{ step: "step1 done" }]);
});

test("the bulkhead runs maxConcurrent calls, queues maxQueue more, and refuses the rest at once", async () => {
  p = await boot({ fixtures: ["chain"] }, { bulkhead: { maxConcurrent: 2, maxQueue: 1 } });
  const started = performance.now();
  const responses = await Promise.all(Array.from({ length: 4 }, () => p!.req("/api/chain/sleep?ms=200")));
  const statuses = responses.map((r) => r.status).sort();
  expect(statuses).toEqual([200, 200, 200, 503]);
  const refused = responses.find((r) => r.status === 503)!;
  expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("PLT_BULKHEAD_FULL");
  // two ran at once, the queued one after them
  expect(performance.now() - started).toBeGreaterThanOrEqual(390);
  const health = (await (await p.req("/health")).json()) as { services: Record<string, { breaker: string }> };
  expect(health.services.chain?.breaker).toBe("closed");
});

test("a route with a configured fallback answers with it when the service fails; others get the error", async () => {
  p = await boot(
    { fixtures: ["flaky"] },
    {
      plugins: { config: { flaky: { failFirst: 100 } } },
      gateway: { fallbacks: { "GET /api/flaky": { status: 200, body: { cached: true }, headers: { "cache-control": "no-store" } } } },
    },
  );
  const res = await p.req("/api/flaky");
  expect(res.status).toBe(200);
  expect(res.headers.get("x-plinth-fallback")).toBe("PLT_HANDLER_ERROR");
  expect(res.headers.get("cache-control")).toBe("no-store");
  expect(await res.json()).toEqual({ cached: true });
  const other = await p.req("/api/flaky/conflicts");
  expect(other.status).toBe(200); // healthy route, no fallback involved
  expect(other.headers.get("x-plinth-fallback")).toBeNull();
});

test("a call's late reply never reaches the worker that replaced its crashed caller (which numbers its calls afresh)", async () => {
  const slow = `import { definePlugin } from "plinth";
let waiting = 0;
export default definePlugin({
  name: "slow", version: "1.0.0",
  actions: {
    wait: async (ctx) => {
      const { ms, v } = ctx.params as { ms: number; v: string };
      waiting++;
      try { await Bun.sleep(ms); return v; } finally { waiting--; }
    },
  },
  routes: { "GET /waiting": () => ({ waiting }) },
});`;
  const asker = `import { definePlugin } from "plinth";
export default definePlugin({
  name: "asker", version: "1.0.0",
  routes: {
    "POST /call": async (ctx) => ({ got: await ctx.call("slow.wait", ctx.body) }),
    "POST /crash": () => { setTimeout(() => { throw new Error("crashed on purpose"); }, 0); return {}; },
    "GET /ping": () => ({ ok: true }),
  },
});`;
  p = await boot({ files: { "slow.ts": slow, "asker.ts": asker } }, { workers: { restartDelayMs: 10 }, breaker: { failureThreshold: 1_000_000, minimumCalls: 1_000_000 } });
  const orphan = p.req("/api/asker/call", { json: { ms: 800, v: "old" } }); // call 1 of the first worker
  await eventually(async () => ((await (await p!.req("/api/slow/waiting")).json()) as { waiting: number }).waiting === 1);
  await p.req("/api/asker/crash", { method: "POST" });
  await orphan; // failed with the crash
  await eventually(async () => (await p!.req("/api/asker/ping")).status === 200);
  // Call 1 of the new worker, still waiting when the old call's reply (at ~800 ms) comes back.
  const res = await p.req("/api/asker/call", { json: { ms: 1_500, v: "new" } });
  expect(await res.json()).toEqual({ got: "new" });
});
