/** The adaptive concurrency limit, fed rounds of samples by hand (its time is the caller's). */
import { describe, expect, test } from "bun:test";
import { ConcurrencyLimit, MIN_ROUND, QUEUE_MS, WINDOW_MS } from "../../../runtime/breaker/limit";

/**
 * One round of `limit.current` completions, spread evenly over `ms` from `start`, each with round
 * trip `rtt`, with `inflight` calls in flight (default: the whole limit). Returns when it ended.
 */
function round(limit: ConcurrencyLimit, start: number, ms: number, rtt: number, inflight = limit.current): number {
  const n = Math.max(MIN_ROUND, limit.current);
  for (let i = 1; i <= n; i++) limit.sample(rtt, inflight, start + (ms * i) / n);
  return start + ms;
}

describe("ConcurrencyLimit", () => {
  test("fixed: the limit is maxConcurrent whatever the samples say", () => {
    const limit = new ConcurrencyLimit({ max: 64, min: 1, adaptive: false });
    expect(limit.current).toBe(64);
    let t = 0;
    for (let i = 0; i < 5; i++) t = round(limit, t, 1_000, 900);
    expect(limit.current).toBe(64);
    expect(limit.rtt).toBeCloseTo(900);
  });

  test("adaptive: starts at 20 within min…max", () => {
    expect(new ConcurrencyLimit({ max: 256, min: 4, adaptive: true }).current).toBe(20);
    expect(new ConcurrencyLimit({ max: 8, min: 1, adaptive: true }).current).toBe(8);
    expect(new ConcurrencyLimit({ max: 256, min: 32, adaptive: true }).current).toBe(32);
  });

  test("a service that runs calls one by one gets what keeps it busy plus QUEUE_MS of work: 2 × rate × (round trip + QUEUE_MS)", () => {
    const limit = new ConcurrencyLimit({ max: 256, min: 1, adaptive: true });
    // 10 ms per call, each round trip 10 ms at best: 20 calls take 200 ms (the first round starts
    // with its first call, a round trip before its first completion).
    round(limit, 0, 200, 10);
    expect(limit.current).toBe(Math.ceil(2 * (20 / 200) * (10 + QUEUE_MS))); // 12
    // The next round (12 calls, 120 ms): the same rate, the same limit.
    round(limit, 200, 120, 10);
    expect(limit.current).toBe(12);
  });

  test("a service whose calls wait on I/O (the rate grows with the limit) is given more, up to maxConcurrent", () => {
    const limit = new ConcurrencyLimit({ max: 256, min: 1, adaptive: true });
    let t = 0;
    const seen: number[] = [];
    // Every call takes 100 ms whatever else runs: a round of L calls completes L per 100 ms.
    t = round(limit, t, 100, 100);
    for (let i = 0; i < 5; i++) {
      const before = limit.current;
      t = round(limit, t, 100, 100);
      seen.push(limit.current);
      expect(limit.current).toBe(Math.min(256, Math.ceil(2 * (before / 100) * (100 + QUEUE_MS)))); // 3× per round
    }
    expect(seen.at(-1)).toBe(256);
  });

  test("a busy main thread (every round trip longer, the rate unchanged) does not shrink the limit", () => {
    const limit = new ConcurrencyLimit({ max: 256, min: 1, adaptive: true });
    let t = 0;
    // 30 calls per ms, answered within 1 ms...
    for (let i = 0; i < 3; i++) t = round(limit, t, limit.current / 30, 1);
    expect(limit.current).toBe(256);
    // ...then each answer waits 40 ms for the gateway's turn, at the same rate.
    for (let i = 0; i < 5; i++) t = round(limit, t, limit.current / 30, 40);
    expect(limit.current).toBe(256);
  });

  test("a service that slowed down gets a lower limit once its faster rate is out of the window", () => {
    const limit = new ConcurrencyLimit({ max: 256, min: 1, adaptive: true });
    let t = round(limit, 0, 100, 1); // about 20 calls per 100 ms, 1 ms each
    t = round(limit, t, limit.current * 5, 1); // one every 5 ms
    const before = limit.current;
    expect(before).toBeGreaterThanOrEqual(Math.ceil(2 * 0.2 * (1 + QUEUE_MS))); // 21
    // Now 10 ms per call: the old rate and round trip still count within the window...
    t = round(limit, t, limit.current * 10, 10);
    expect(limit.current).toBe(before);
    // ...and no longer after it: 2 × 0.1 × (10 + 50).
    round(limit, t + WINDOW_MS, limit.current * 10, 10);
    expect(limit.current).toBe(12);
  });

  test("a round that used less than half the limit (demand set its rate) leaves the limit as it is", () => {
    const limit = new ConcurrencyLimit({ max: 256, min: 1, adaptive: true });
    // One call every 100 ms, alone: a rate of demand, not of the service.
    round(limit, 0, 2_000, 1, 1);
    expect(limit.current).toBe(20);
    // Used: the service's own rate counts.
    round(limit, 2_000, 20, 1, 20);
    expect(limit.current).toBe(Math.ceil(2 * 1 * (1 + QUEUE_MS)));
  });

  test("never below min nor above max", () => {
    const slow = new ConcurrencyLimit({ max: 256, min: 4, adaptive: true });
    round(slow, 0, 20_000, 1_000); // one call a second
    expect(slow.current).toBe(4);
    const fast = new ConcurrencyLimit({ max: 30, min: 1, adaptive: true });
    round(fast, 0, 1, 1);
    expect(fast.current).toBe(30);
  });

  test("rtt: the smoothed round trip, from the first round on", () => {
    const limit = new ConcurrencyLimit({ max: 8, min: 1, adaptive: false });
    expect(limit.rtt).toBe(0);
    round(limit, 0, 10, 8);
    expect(limit.rtt).toBe(8);
    round(limit, 10, 10, 16);
    expect(limit.rtt).toBe(10); // a quarter of the way to the new mean
  });
});
