/**
 * Circuit breakers on real cross-service calls: the target fails, the breaker
 * opens and answers at once without reaching it, then a probe closes it.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { boot, type Booted } from "../helpers/boot";
import { connectMqtt, eventually } from "../helpers/mqtt";
import { rawHttp, requestBytes } from "../helpers/raw-http";

let p: Booted | undefined;
afterEach(async () => {
  await p?.stop();
  p = undefined;
});

const breaker = { failureThreshold: 3, resetTimeoutMs: 300, halfOpenMaxCalls: 1 };

describe("gateway → service breaker", () => {
  test("opens after repeated 500s, answers 503 PLT_BREAKER_OPEN without calling, closes after a good probe", async () => {
    p = await boot({ fixtures: ["flaky"] }, { breaker, plugins: { config: { flaky: { failFirst: 3 } } } });
    const watcher = await connectMqtt(p.mqttUrl);
    await watcher.subscribe("$platform/breakers/#");

    for (let i = 0; i < 3; i++) {
      const res = await p.req("/api/flaky");
      expect(res.status).toBe(500);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("PLT_HANDLER_ERROR");
    }
    const open = await p.req("/api/flaky");
    expect(open.status).toBe(503);
    expect(open.headers.get("retry-after")).toBe("1");
    expect(((await open.json()) as { error: { code: string } }).error.code).toBe("PLT_BREAKER_OPEN");
    const opened = await watcher.next((m) => m.json().state === "open");
    expect(opened.topic).toBe("$platform/breakers/flaky");
    // When it lets a probe through, as a time: an ISO 8601 string, about resetTimeoutMs from now.
    const listed = (await (await p.req("/api/platform/breakers")).json()) as Record<string, { retryAt: string | null }>;
    for (const retryAt of [opened.json().retryAt, listed.flaky?.retryAt]) {
      expect(typeof retryAt).toBe("string");
      expect(new Date(retryAt).toISOString()).toBe(retryAt);
      expect(Math.abs(Date.parse(retryAt) - Date.now())).toBeLessThan(60_000);
    }
    const health = (await (await p.req("/health")).json()) as { services: Record<string, { breaker: string }> };
    expect(health.services.flaky?.breaker).toBe("open");

    // Refused at once until retryAt, then the first call through is the probe. Calls 1-3 failed, the
    // refused ones never arrived: the probe is call 4.
    const probe = await eventually(async () => {
      const res = await p!.req("/api/flaky");
      if (res.status === 503) return null;
      return { at: Date.now(), status: res.status, body: await res.json() };
    }, 5_000, 20);
    expect(probe).toMatchObject({ status: 200, body: { ok: true, calls: 4 } });
    expect(probe.at).toBeGreaterThanOrEqual(Date.parse(opened.json().retryAt) - 5); // (announced to the millisecond, from a monotonic clock)
    expect((await watcher.next((m) => m.json().state === "closed")).json().service).toBe("flaky");
    await watcher.end();
  });
});

describe("service → service breaker (ctx.call)", () => {
  test("the caller gets typed errors: handler error, then PLT_BREAKER_OPEN", async () => {
    p = await boot({ fixtures: ["flaky", "caller"] }, { breaker, plugins: { config: { flaky: { failFirst: 10 } } } });
    const call = async () => (await p!.req("/api/caller", { json: { target: "flaky.work" } })).json();
    for (let i = 0; i < 3; i++) expect(await call()).toEqual({ ok: false, typed: true, code: "PLT_HANDLER_ERROR", status: 500 });
    expect(await call()).toEqual({ ok: false, typed: true, code: "PLT_BREAKER_OPEN", status: 503 });
  });

  test("4xx answers never open the breaker", async () => {
    p = await boot({ examples: ["inventory"], fixtures: ["caller"] }, { breaker });
    for (let i = 0; i < 5; i++) {
      const body = await (await p.req("/api/caller", { json: { target: "inventory.reserve", params: { sku: "plum", qty: 999 } } })).json();
      expect(body).toEqual({ ok: false, typed: true, code: "INVENTORY_OUT_OF_STOCK", status: 409 });
    }
    const invalid = await (await p.req("/api/caller", { json: { target: "inventory.reserve", params: { sku: 1 } } })).json();
    expect(invalid).toMatchObject({ code: "PLT_VALIDATION", status: 400 });
    const ok = await (await p.req("/api/caller", { json: { target: "inventory.reserve", params: { sku: "plum", qty: 1 } } })).json();
    expect(ok).toEqual({ ok: true, value: { sku: "plum", reserved: 1, left: 9 } });
  });

  test("unknown targets fail with typed errors", async () => {
    p = await boot({ fixtures: ["caller"] });
    const call = async (target: string) => (await p!.req("/api/caller", { json: { target } })).json();
    expect(await call("ghost.work")).toMatchObject({ code: "PLT_SERVICE_NOT_FOUND", status: 404 });
    expect(await call("caller.nothing")).toMatchObject({ code: "PLT_ACTION_NOT_FOUND", status: 404 });
    expect(await call("no-dot")).toMatchObject({ code: "PLT_BAD_REQUEST", status: 400 });
  });

  test("a call that outlives its timeout fails fast with PLT_TIMEOUT, and timeouts count as failures", async () => {
    p = await boot({ fixtures: ["caller", "crashy"] }, { breaker: { ...breaker, failureThreshold: 2 } });
    const call = async () => (await p!.req("/api/caller", { json: { target: "crashy.hang", timeoutMs: 50 } })).json();
    const started = performance.now();
    expect(await call()).toEqual({ ok: false, typed: true, code: "PLT_TIMEOUT", status: 504 });
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(await call()).toMatchObject({ code: "PLT_TIMEOUT" });
    expect(await call()).toMatchObject({ code: "PLT_BREAKER_OPEN" });
  });
});

describe("breaker settings from the plugin and from platform.config.ts", () => {
  const fragile = (breaker: string) => `import { definePlugin } from "plinth";
export default definePlugin({
  name: "fragile", version: "1.0.0", breaker: ${breaker},
  actions: {
    fail: () => { throw new Error("always"); },
    risky: { breaker: { failureThreshold: 1 }, handler: () => { throw new Error("risky"); } },
    fine: () => ({ fine: true }),
  },
});`;
  const call = async (target: string) => (await p!.req("/api/caller", { json: { target } })).json();

  test("the plugin's own settings apply; an action with its own breaker opens alone", async () => {
    p = await boot({ fixtures: ["caller"], files: { "fragile.ts": fragile("{ failureThreshold: 2 }") } });
    expect(await call("fragile.risky")).toMatchObject({ code: "PLT_HANDLER_ERROR" });
    expect(await call("fragile.risky")).toMatchObject({ code: "PLT_BREAKER_OPEN" });
    expect(await call("fragile.fine")).toEqual({ ok: true, value: { fine: true } }); // the service breaker is still closed
    expect(await call("fragile.fail")).toMatchObject({ code: "PLT_HANDLER_ERROR" });
    expect(await call("fragile.fail")).toMatchObject({ code: "PLT_HANDLER_ERROR" });
    expect(await call("fragile.fine")).toMatchObject({ code: "PLT_BREAKER_OPEN" }); // 2 in a row, as the plugin asked
    const breakers = (await (await p.req("/api/platform/breakers")).json()) as Record<string, { state: string }>;
    expect(breakers["fragile.risky"]?.state).toBe("open");
    expect(breakers.fragile?.state).toBe("open");
  });

  test("platform.config.ts breaker.services overrides the plugin", async () => {
    p = await boot({ fixtures: ["caller"], files: { "fragile.ts": fragile("{ failureThreshold: 2 }") } }, { breaker: { services: { fragile: { failureThreshold: 3 } } } });
    for (let i = 0; i < 3; i++) expect(await call("fragile.fail")).toMatchObject({ code: "PLT_HANDLER_ERROR" });
    expect(await call("fragile.fine")).toMatchObject({ code: "PLT_BREAKER_OPEN" });
  });
});

describe("bulkhead: a queue bounded by time", () => {
  const held = `import { definePlugin, route, t } from "plinth";
let runs = 0;
export default definePlugin({
  name: "held", version: "1.0.0",
  routes: {
    "GET /hold": route({ query: t.Object({ ms: t.Integer() }), handler: async (ctx) => { runs++; await Bun.sleep(ctx.query.ms); return { runs }; } }),
    "GET /runs": () => ({ runs }),
    "POST /upload": () => ({ runs }),
  },
});`;

  test("a request that cannot get a slot within maxQueueMs gets 503 PLT_BULKHEAD_FULL then, before the one holding the slot ends, and never runs", async () => {
    p = await boot({ files: { "held.ts": held } }, { bulkhead: { maxConcurrent: 1, adaptive: false, maxQueueMs: 100 } });
    const answered: number[] = [];
    const hold = () => p!.req("/api/held/hold?ms=1500").then((res) => (answered.push(res.status), res));
    const [a, b] = await Promise.all([hold(), hold()]);
    // One got the slot and answered after 1.5 s; the other waited its 100 ms and was refused first.
    expect(answered).toEqual([503, 200]);
    const refused = a.status === 503 ? a : b;
    const body = (await refused.json()) as { error: { code: string; data: unknown } };
    expect(body.error).toMatchObject({ code: "PLT_BULKHEAD_FULL", data: { service: "held", retryInMs: 100 } });
    expect(refused.headers.get("retry-after")).toBe("1");
    expect(await (await p.req("/api/held/runs")).json()).toEqual({ runs: 1 });
  });

  test("a request its service cannot take is refused before its body is read: a body that never comes is not waited for", async () => {
    p = await boot({ files: { "held.ts": held } }, { bulkhead: { maxConcurrent: 1, adaptive: false, maxQueue: 0 } });
    // Held long enough that the slot is still taken when the refused requests below arrive on a busy machine.
    const holding = p.req("/api/held/hold?ms=8000");
    await eventually(async () => (await rawHttp(p!.url, requestBytes("GET", "/api/held/runs", [["Host", "x.test"]]))).answers[0]?.status === 503, 15_000);
    // Headers announcing 100 kB, and no body at all.
    const head = requestBytes("POST", "/api/held/upload", [["Host", "x.test"], ["Content-Type", "application/json"], ["Content-Length", "100000"]]);
    const { answers } = await rawHttp(p.url, head, { timeoutMs: 5_000 });
    expect(answers[0]?.status).toBe(503);
    expect(answers[0]?.headers["retry-after"]).toBe("1");
    expect(JSON.parse(answers[0]!.body.toString())).toMatchObject({ error: { code: "PLT_BULKHEAD_FULL" } });
    expect((await holding).status).toBe(200);
  }, 40_000);
});
