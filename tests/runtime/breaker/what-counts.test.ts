/** What a breaker holds against its callee: which errors are the callee's failures, which calls are slow. */
import { describe, expect, test } from "bun:test";
import { CircuitBreaker, isFailure, type BreakerOptions } from "../../../runtime/breaker/breaker";
import { PlinthError } from "../../../runtime/errors";

function fakeClock() {
  const clock = { t: 1_000, now: () => clock.t, advance: (ms: number) => void (clock.t += ms) };
  return clock;
}

/** Rates only: the consecutive-failure rule is kept out of the way. */
const RATES: BreakerOptions = { failureThreshold: 1_000, resetTimeoutMs: 1_000, halfOpenMaxCalls: 1, windowMs: 10_000, buckets: 10, failureRate: 1 };

describe("isFailure", () => {
  test("load shedding and a storage that refuses writes are not the callee's failures", () => {
    for (const code of ["PLT_BREAKER_OPEN", "PLT_BULKHEAD_FULL", "PLT_STORAGE_FULL", "PLT_STORAGE_UNAVAILABLE"]) {
      expect([code, isFailure(new PlinthError(code, "refused"))]).toEqual([code, false]);
    }
  });

  test("other server errors and timeouts are; a caller's 4xx is not", () => {
    expect(isFailure(new PlinthError("PLT_INTERNAL", "broke"))).toBe(true);
    expect(isFailure(new PlinthError("PLT_TIMEOUT", "late"))).toBe(true);
    expect(isFailure(new PlinthError("APP_UPSTREAM", "bad gateway", { status: 502 }))).toBe(true);
    expect(isFailure(new PlinthError("APP_GONE", "gone", { status: 410 }))).toBe(false);
  });
});

describe("slow calls", () => {
  test("a call that lasts exactly slowCallMs is slow", () => {
    const clock = fakeClock();
    const breaker = new CircuitBreaker("svc", { ...RATES, minimumCalls: 1, slowCallMs: 100, slowCallRate: 1 }, clock);
    const admission = breaker.enter();
    if (admission instanceof PlinthError) throw admission;
    clock.advance(100);
    breaker.exit(admission, false);
    expect(breaker.state).toBe("open");
  });

  test("below slowCallRate the breaker stays closed; at it, it opens", () => {
    const clock = fakeClock();
    const breaker = new CircuitBreaker("svc", { ...RATES, minimumCalls: 4, slowCallMs: 100, slowCallRate: 0.5 }, clock);
    const call = (ms: number) => {
      const admission = breaker.enter();
      if (admission instanceof PlinthError) throw admission;
      clock.advance(ms);
      breaker.exit(admission, false);
    };
    for (const ms of [1, 1, 1, 100]) call(ms); // 1 slow in 4
    expect(breaker.state).toBe("closed");
    call(100); // 2 slow in 5
    expect(breaker.state).toBe("closed");
    call(100); // 3 slow in 6
    expect(breaker.state).toBe("open");
  });
});
