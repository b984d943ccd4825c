/** The breaker's rolling window: failure-rate and slow-call-rate thresholds, on a fake clock. */
import { describe, expect, test } from "bun:test";
import { CircuitBreaker, type BreakerOptions } from "../../../runtime/breaker/breaker";
import { Breakers } from "../../../runtime/breaker/call";
import { RollingWindow } from "../../../runtime/breaker/window";

function fakeClock(start = 1_000_000) {
  const clock = { t: start, now: () => clock.t, advance: (ms: number) => void (clock.t += ms) };
  return clock;
}

const RATE: BreakerOptions = {
  failureThreshold: 1_000, // keep the consecutive rule out of these tests
  resetTimeoutMs: 1_000,
  halfOpenMaxCalls: 1,
  windowMs: 10_000,
  buckets: 10,
  minimumCalls: 10,
  failureRate: 0.5,
  slowCallMs: 100,
  slowCallRate: 1,
};

const ok = () => Promise.resolve("ok");
const boom = () => Promise.reject(new Error("boom"));

describe("RollingWindow", () => {
  test("sums the buckets inside the window and forgets older ones", () => {
    const clock = fakeClock();
    const window = new RollingWindow(1_000, 10, clock);
    window.record(true, false);
    clock.advance(500);
    window.record(false, true);
    expect(window.totals()).toEqual({ calls: 2, failures: 1, slow: 1 });
    clock.advance(600); // the first bucket is now older than the window
    expect(window.totals()).toEqual({ calls: 1, failures: 0, slow: 1 });
    clock.advance(1_000);
    expect(window.totals()).toEqual({ calls: 0, failures: 0, slow: 0 });
  });
});

describe("failure rate", () => {
  test("opens once minimumCalls are seen and the failure rate reaches the threshold", async () => {
    const breaker = new CircuitBreaker("svc", RATE, fakeClock());
    for (let i = 0; i < 9; i++) await breaker.run(i % 2 ? ok : boom).catch(() => {}); // 5 failures of 9
    expect(breaker.state).toBe("closed");
    await breaker.run(ok); // 5 of 10 = 50%
    expect(breaker.state).toBe("open");
  });

  test("stays closed below the rate", async () => {
    const breaker = new CircuitBreaker("svc", RATE, fakeClock());
    for (let i = 0; i < 30; i++) await breaker.run(i % 3 === 0 ? boom : ok).catch(() => {}); // 33%
    expect(breaker.state).toBe("closed");
  });

  test("failures that left the window no longer count", async () => {
    const clock = fakeClock();
    const breaker = new CircuitBreaker("svc", RATE, clock);
    for (let i = 0; i < 9; i++) await breaker.run(boom).catch(() => {});
    clock.advance(11_000);
    for (let i = 0; i < 10; i++) await breaker.run(ok);
    expect(breaker.state).toBe("closed");
    expect(breaker.snapshot().window).toEqual({ calls: 10, failures: 0, slow: 0 });
  });
});

describe("slow calls", () => {
  const slowly = (clock: ReturnType<typeof fakeClock>, ms: number) => async () => {
    clock.advance(ms);
    return "late";
  };

  test("opens when the rate of calls slower than slowCallMs reaches slowCallRate", async () => {
    const clock = fakeClock();
    const breaker = new CircuitBreaker("svc", { ...RATE, minimumCalls: 4, slowCallRate: 0.5 }, clock);
    await breaker.run(ok);
    await breaker.run(slowly(clock, 150));
    await breaker.run(ok);
    expect(breaker.state).toBe("closed");
    await breaker.run(slowly(clock, 150)); // 2 slow of 4
    expect(breaker.state).toBe("open");
  });

  test("a slow probe opens a half-open breaker again; a quick one closes it", async () => {
    const clock = fakeClock();
    const breaker = new CircuitBreaker("svc", { ...RATE, failureThreshold: 1 }, clock);
    await breaker.run(boom).catch(() => {});
    clock.advance(1_000);
    expect(breaker.state).toBe("half-open");
    expect(await breaker.run(slowly(clock, 150))).toBe("late");
    expect(breaker.state).toBe("open");
    clock.advance(1_000);
    await breaker.run(ok);
    expect(breaker.state).toBe("closed");
  });
});

describe("per-service and per-action settings", () => {
  const base: BreakerOptions = { failureThreshold: 5, resetTimeoutMs: 1_000, halfOpenMaxCalls: 1 };

  test("a service override applies to that service only", async () => {
    const breakers = new Breakers(base, fakeClock(), undefined, undefined, (target) => (target === "fragile" ? { failureThreshold: 1 } : undefined));
    await breakers.guard("fragile", boom).catch(() => {});
    await breakers.guard("sturdy", boom).catch(() => {});
    expect(breakers.get("fragile").state).toBe("open");
    expect(breakers.get("sturdy").state).toBe("closed");
  });

  test("an action with settings of its own gets its own breaker; other actions share the service's", async () => {
    const breakers = new Breakers(base, fakeClock(), undefined, undefined, (target) => (target === "svc.risky" ? { failureThreshold: 1 } : undefined));
    await breakers.guard("svc", boom, undefined, "risky").catch(() => {});
    expect(breakers.get("svc", "risky").state).toBe("open");
    expect(breakers.get("svc", "other")).toBe(breakers.get("svc"));
    expect(breakers.get("svc").state).toBe("closed");
    expect(await breakers.guard("svc", ok, undefined, "other")).toBe("ok");
    expect(Object.keys(breakers.snapshot()).sort()).toEqual(["svc", "svc.risky"]);
  });
});
