/**
 * The fault-injection plugin against the real platform, with the breakers on a
 * fake clock: every transition is driven by hand, nothing sleeps.
 */
import { afterEach, expect, test } from "bun:test";
import type { BreakerState } from "../../runtime/breaker/breaker";
import { boot, NO_BREAKER, type Booted } from "../helpers/boot";
import { connectMqtt, eventually } from "../helpers/mqtt";

let p: Booted | undefined;
afterEach(async () => {
  await p?.stop();
  p = undefined;
});

function fakeClock() {
  const clock = { t: 1_000_000, now: () => clock.t, advance: (ms: number) => void (clock.t += ms) };
  return clock;
}

const call = async (target: string) => (await p!.req("/api/caller", { json: { target } })).json() as Promise<{ ok: boolean; code?: string }>;
const breaker = async () => ((await (await p!.req("/api/platform/breakers")).json()) as Record<string, { state: BreakerState }>).faults?.state;

test("failure rate: closed → open → half-open → open → half-open → closed, on a fake clock", async () => {
  const clock = fakeClock();
  p = await boot(
    { fixtures: ["faults", "caller"] },
    {
      plugins: { config: { faults: { failFraction: 0.5 } } },
      breaker: { failureThreshold: 1_000, minimumCalls: 10, failureRate: 0.5, resetTimeoutMs: 5_000 },
    },
    { clock },
  );
  await using watcher = await connectMqtt(p.mqttUrl);
  await watcher.subscribe("$platform/breakers/faults");

  // every even-numbered call fails: the tenth call brings the window to 5/10 = 50%
  const tenCalls = async () => {
    const outcomes: string[] = [];
    for (let i = 0; i < 10; i++) outcomes.push((await call("faults.fraction")).code ?? "ok");
    return outcomes.filter((o) => o === "PLT_HANDLER_ERROR").length;
  };
  expect(await tenCalls()).toBe(5); // calls 1–10
  expect(await breaker()).toBe("open");
  expect(await call("faults.fraction")).toMatchObject({ code: "PLT_BREAKER_OPEN" }); // not delivered

  clock.advance(5_000);
  expect(await breaker()).toBe("half-open");
  expect(await call("faults.fraction")).toMatchObject({ ok: true }); // call 11 (odd) succeeds: probe closes
  expect(await breaker()).toBe("closed");

  expect(await tenCalls()).toBe(5); // calls 12–21
  expect(await breaker()).toBe("open");
  clock.advance(5_000);
  expect(await call("faults.fraction")).toMatchObject({ code: "PLT_HANDLER_ERROR" }); // call 22 fails: probe reopens
  expect(await breaker()).toBe("open");
  clock.advance(4_999);
  expect(await breaker()).toBe("open");
  clock.advance(1);
  expect(await call("faults.fraction")).toMatchObject({ ok: true }); // call 23
  expect(await breaker()).toBe("closed");

  const states = await eventually(() => {
    const seen = watcher.received.map((m) => m.json().state as string);
    return seen.length >= 8 ? seen : null;
  });
  expect(states).toEqual(["open", "half-open", "closed", "open", "half-open", "open", "half-open", "closed"]);
  // the rejected call never reached the plugin
  expect((await call("faults.calls")) as unknown).toMatchObject({ ok: true, value: { fraction: 23 } });
});

test("slow calls: hangs that time out open the breaker; other services are untouched", async () => {
  const clock = fakeClock();
  p = await boot(
    { fixtures: ["faults", "caller"], examples: ["inventory"] },
    { breaker: { failureThreshold: 2 }, calls: { timeoutMs: 50 } },
    { clock },
  );
  expect(await call("faults.hang")).toMatchObject({ code: "PLT_TIMEOUT" });
  expect(await call("faults.hang")).toMatchObject({ code: "PLT_TIMEOUT" });
  expect(await breaker()).toBe("open");
  expect((await p.req("/api/inventory/apple")).status).toBe(200);
});

test("a leaking worker is restarted once its heap passes workers.maxHeapBytes; the others never notice", async () => {
  p = await boot(
    { fixtures: ["faults", "caller"], examples: ["inventory"] },
    {
      plugins: { config: { faults: { leakBytes: 16 * 2 ** 20 } } },
      workers: { maxHeapBytes: 64 * 2 ** 20, heartbeatMs: 50, restartDelayMs: 10, maxRestarts: 100 },
      // Polled through its restart (503s until the new worker is ready): its breaker stays closed.
      breaker: NO_BREAKER,
    },
  );
  const restarts = async () =>
    ((await (await p!.req("/api/platform/services")).json()) as { services: Array<{ name: string; restarts: number }> }).services.find((s) => s.name === "faults")!.restarts;
  // Each call keeps 16 MiB more; past 64 MiB the next heartbeat reports it and the worker is replaced.
  const leaked: number[] = [];
  await eventually(async () => {
    const r = (await call("faults.leak")) as { ok: boolean; value?: { leakedMiB: number } };
    if (r.ok) leaked.push(r.value!.leakedMiB);
    return (await restarts()) >= 1;
  }, 15_000, 20);
  expect(Math.max(...leaked)).toBeGreaterThanOrEqual(64);
  // The fresh worker starts from nothing, and the sibling served throughout.
  await eventually(async () => ((await call("faults.leak")) as { ok: boolean }).ok, 5_000);
  expect(((await call("faults.leak")) as { value?: { leakedMiB: number } }).value!.leakedMiB).toBeLessThan(64);
  expect((await p.req("/api/inventory/apple")).status).toBe(200);
}, 30_000);
