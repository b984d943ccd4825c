/**
 * Retries of idempotent calls on the breaker's clock: how long each backoff is (doubling, with
 * jitter between half and one and a half times), and the deadline no retry may start at or after.
 */
import { afterEach, expect, spyOn, test } from "bun:test";
import { Breakers, type RetryOptions } from "../../../runtime/breaker/call";

/** Wall-clock time of the fake clock's zero: far from Date.now(), so a deadline read on the wrong clock shows. */
const EPOCH = Date.UTC(2020, 0, 1);

/** A clock the test owns: sleeping moves it at once, and each wait is recorded. */
function fakeClock() {
  const clock = {
    t: 1_000,
    waits: [] as number[],
    now: () => clock.t,
    epoch: () => EPOCH + clock.t,
    async sleep(ms: number) {
      clock.waits.push(ms);
      clock.t += ms;
    },
  };
  return clock;
}

const OPTIONS = { failureThreshold: 100, resetTimeoutMs: 1_000, halfOpenMaxCalls: 1 };

/** A call that always fails as a callee failure, counting its attempts. */
function failing() {
  const f = { calls: 0, fn: () => (f.calls++, Promise.reject(new Error(`fail ${f.calls}`))) };
  return f;
}

afterEach(() => {
  (Math.random as unknown as { mockRestore?: () => void }).mockRestore?.();
});

test("the backoff doubles per retry, times a jitter between 0.5 and 1.5: base × 2^retry × (0.5 + random)", async () => {
  for (const [random, waits] of [
    [0, [50, 100, 200]],
    [0.75, [125, 250, 500]],
  ] as const) {
    spyOn(Math, "random").mockReturnValue(random);
    const clock = fakeClock();
    const call = failing();
    const retry: RetryOptions = { retries: 3, retryDelayMs: 100, deadline: EPOCH + 60_000 };
    await expect(new Breakers(OPTIONS, clock).guard("svc", call.fn, retry)).rejects.toThrow("fail 4");
    expect([random, call.calls, clock.waits]).toEqual([random, 4, [...waits]]);
  }
});

test("a retry that would start exactly at the deadline is not made; one that starts just before it is", async () => {
  spyOn(Math, "random").mockReturnValue(0); // first backoff: 50 ms
  const atDeadline = fakeClock();
  const first = failing();
  const deadline = EPOCH + atDeadline.t + 50;
  await expect(new Breakers(OPTIONS, atDeadline).guard("svc", first.fn, { retries: 3, retryDelayMs: 100, deadline })).rejects.toThrow("fail 1");
  expect([first.calls, atDeadline.waits]).toEqual([1, []]);

  const before = fakeClock();
  const second = failing();
  // The second retry (100 ms after the first) would start past the deadline.
  await expect(new Breakers(OPTIONS, before).guard("svc", second.fn, { retries: 3, retryDelayMs: 100, deadline: deadline + 1 })).rejects.toThrow("fail 2");
  expect([second.calls, before.waits]).toEqual([2, [50]]);
});

test("a clock with no wall clock of its own: the deadline is read against Date.now()", async () => {
  spyOn(Math, "random").mockReturnValue(0);
  const clock = fakeClock();
  const monotonicOnly = { now: clock.now, sleep: clock.sleep };
  const call = failing();
  await expect(new Breakers(OPTIONS, monotonicOnly).guard("svc", call.fn, { retries: 2, retryDelayMs: 10, deadline: Date.now() + 60_000 })).rejects.toThrow("fail 3");
  expect([call.calls, clock.waits]).toEqual([3, [5, 10]]);
});
