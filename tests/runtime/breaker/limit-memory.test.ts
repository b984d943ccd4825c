/**
 * The adaptive limit remembers the highest rate and the shortest round trip for WINDOW_MS (a newer
 * equal one renews it), and counts a round as using the limit if half of it was in flight at any point.
 */
import { expect, test } from "bun:test";
import { ConcurrencyLimit, QUEUE_MS, WINDOW_MS } from "../../../runtime/breaker/limit";

const T0 = 100_000;

/** `n` completions, one every `every` ms after `from`, each with round trip `rtt`; returns the last one's time. */
function completions(limit: ConcurrencyLimit, from: number, n: number, every: number, rtt: number, inflight: (i: number) => number = () => limit.current): number {
  for (let i = 1; i <= n; i++) limit.sample(rtt, inflight(i), from + every * i);
  return from + every * n;
}

const adaptive = () => new ConcurrencyLimit({ max: 256, min: 1, adaptive: true });

test("a slower round within WINDOW_MS of a faster one (even exactly WINDOW_MS after it) keeps the faster rate", () => {
  const limit = adaptive();
  const first = completions(limit, T0, 20, 10, 10); // 20 calls in 200 ms
  expect(limit.current).toBe(Math.ceil(2 * (20 / 200) * (10 + QUEUE_MS))); // 12
  // 12 calls, the last one exactly WINDOW_MS after the first round ended, at half the rate.
  completions(limit, first + WINDOW_MS - 12 * 20, 12, 20, 10);
  expect(limit.current).toBe(12);
});

test("an equal rate seen later renews it: it is remembered WINDOW_MS from then", () => {
  const limit = adaptive();
  const first = completions(limit, T0, 20, 10, 10); // 0.1 calls/ms
  const second = completions(limit, first + 1_500, 12, 10, 10); // 0.1 calls/ms again
  expect(limit.current).toBe(12);
  completions(limit, second + 900, 12, 20, 10); // slower, 2,900 ms after the first round
  expect(limit.current).toBe(12);
});

test("a shorter round trip seen later replaces the longer one", () => {
  const limit = adaptive();
  const first = completions(limit, T0, 20, 10, 30); // the round starts one round trip before its first completion
  expect(limit.current).toBe(Math.ceil(2 * (20 / 220) * (30 + QUEUE_MS))); // 15
  completions(limit, first, 15, 10, 10); // 0.1 calls/ms, 10 ms round trips
  expect(limit.current).toBe(Math.ceil(2 * 0.1 * (10 + QUEUE_MS))); // 12
});

test("a round uses the limit if half of it was in flight at any point, not only at its end", () => {
  const peakFirst = adaptive();
  completions(peakFirst, T0, 20, 10, 10, (i) => (i === 1 ? 20 : 1));
  expect(peakFirst.current).toBe(12);
  const half = adaptive();
  completions(half, T0, 20, 10, 10, () => 10); // exactly half of 20
  expect(half.current).toBe(12);
  const less = adaptive();
  completions(less, T0, 20, 10, 10, () => 9);
  expect(less.current).toBe(20);
});

test("an equal round trip seen later renews it: it is remembered WINDOW_MS from then", () => {
  const limit = adaptive();
  const first = completions(limit, T0, 20, 10, 10); // 0.1 calls/ms, 10 ms round trips
  const second = completions(limit, first + 1_500, 12, 10, 10); // the same again
  expect(limit.current).toBe(12);
  // Slower round trips, more than WINDOW_MS after the first round but within it of the second.
  const third = completions(limit, second + 900, 12, 10, 30);
  expect(third - first).toBeGreaterThan(WINDOW_MS);
  expect(limit.current).toBe(Math.ceil(2 * 0.1 * (10 + QUEUE_MS))); // 12, not 2 × 0.1 × (30 + 50) = 16
});
