/**
 * The bulkhead's queue over time: waiting calls refused when their time is up (by the sweep, or
 * when a slot frees), never started after that, and the order the queue is served in.
 */
import { describe, expect, test } from "bun:test";
import { Bulkhead } from "../../../runtime/breaker/bulkhead";
import type { PlinthError } from "../../../runtime/errors";

/** A clock the test moves by hand; its wall clock moves with it. */
function fakeClock() {
  const clock = { t: 1_000, now: () => clock.t, epoch: () => 1_700_000_000_000 + clock.t, advance: (ms: number) => void (clock.t += ms) };
  return clock;
}

/** Waiting calls that record whether they were started or refused. */
function track() {
  const started: string[] = [];
  const refused: string[] = [];
  const waiters = new Map<string, (outcome: string) => void>();
  const settled = (name: string) => new Promise<string>((resolve) => waiters.set(name, resolve));
  const call = (name: string) =>
    [
      () => {
        started.push(name);
        waiters.get(name)?.("started");
      },
      (err: PlinthError) => {
        refused.push(`${name}:${err.code}`);
        waiters.get(name)?.("refused");
      },
    ] as const;
  return { started, refused, call, settled };
}

/** `promise`, or a failure once `ms` has passed without it settling. */
function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: Timer | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`not settled within ${ms} ms`)), ms)));
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

const OPTIONS = { maxConcurrent: 1, maxQueue: 100, maxQueueMs: 1_000 };

describe("Bulkhead: the sweep", () => {
  test("refuses each waiting call once its time is up, with no slot freed, and keeps sweeping while any wait", async () => {
    const clock = fakeClock();
    const bulkhead = new Bulkhead("svc", OPTIONS, clock);
    const { started, refused, call, settled } = track();
    expect(bulkhead.tryAcquire()).toBe(true);
    const a = settled("a");
    const b = settled("b");
    bulkhead.enqueue(...call("a"));
    clock.advance(500);
    bulkhead.enqueue(...call("b"));
    clock.advance(500); // a's time is up; b has 500 ms left
    expect(await within(a, 2_000)).toBe("refused");
    expect(bulkhead.load.queued).toBe(1);
    clock.advance(500); // b's too
    expect(await within(b, 2_000)).toBe("refused");
    expect(refused).toEqual(["a:PLT_BULKHEAD_FULL", "b:PLT_BULKHEAD_FULL"]);
    expect(bulkhead.load).toEqual({ active: 1, queued: 0, limit: 1 });
    bulkhead.release();
    expect(started).toEqual([]);
  });
});

describe("Bulkhead: a slot freed", () => {
  test("a call refused from the queue never starts; the one behind it does", () => {
    const clock = fakeClock();
    const bulkhead = new Bulkhead("svc", OPTIONS, clock);
    const { started, refused, call } = track();
    bulkhead.tryAcquire();
    bulkhead.enqueue(...call("a"));
    clock.advance(1_000);
    bulkhead.enqueue(...call("b"));
    bulkhead.sweep();
    expect(refused).toEqual(["a:PLT_BULKHEAD_FULL"]);
    bulkhead.release();
    expect(started).toEqual(["b"]);
    bulkhead.release();
    expect(started).toEqual(["b"]);
    expect(bulkhead.load).toEqual({ active: 0, queued: 0, limit: 1 });
  });

  test("when every waiting call's time is up, they are all refused and none starts", () => {
    const clock = fakeClock();
    const bulkhead = new Bulkhead("svc", OPTIONS, clock);
    const { started, refused, call } = track();
    bulkhead.tryAcquire();
    bulkhead.enqueue(...call("a"));
    bulkhead.enqueue(...call("b"));
    clock.advance(1_000); // exactly maxQueueMs: their time is up now
    bulkhead.release();
    expect(refused).toEqual(["a:PLT_BULKHEAD_FULL", "b:PLT_BULKHEAD_FULL"]);
    expect(started).toEqual([]);
    expect(bulkhead.load).toEqual({ active: 0, queued: 0, limit: 1 });
  });

  test("a call that throws before returning its promise frees its slot", async () => {
    const bulkhead = new Bulkhead("svc", { maxConcurrent: 1, maxQueue: 0 });
    await expect(
      bulkhead.run(() => {
        throw new Error("sync");
      }),
    ).rejects.toThrow("sync");
    expect(bulkhead.load.active).toBe(0);
    expect(await bulkhead.run(async () => "next")).toBe("next");
  });

  test("with two slots, a queue that drains within the budget (queued × round trip ÷ slots) is served oldest first", () => {
    const clock = fakeClock();
    const bulkhead = new Bulkhead("svc", { maxConcurrent: 2, maxQueue: 100, maxQueueMs: 1_000 }, clock);
    // The service's pace: 100 ms a call.
    for (let i = 0; i < 8; i++) {
      bulkhead.tryAcquire();
      const began = clock.now();
      clock.advance(100);
      bulkhead.release(began);
    }
    expect(bulkhead.limit.rtt).toBe(100);
    bulkhead.tryAcquire();
    bulkhead.tryAcquire();
    const { started, call } = track();
    // 15 calls, 2 at a time, 100 ms each: 750 ms, within the 1,000 ms budget.
    for (let i = 0; i < 15; i++) bulkhead.enqueue(...call(`c${i}`));
    bulkhead.release();
    expect(started).toEqual(["c0"]);
  });

  test("a slot freed without its start time teaches nothing about the service's pace", () => {
    const clock = fakeClock();
    const bulkhead = new Bulkhead("svc", { maxConcurrent: 4, maxQueue: 0 }, clock);
    for (let i = 0; i < 8; i++) {
      bulkhead.tryAcquire();
      const began = clock.now();
      clock.advance(100);
      bulkhead.release(began);
    }
    for (let i = 0; i < 16; i++) {
      bulkhead.tryAcquire();
      clock.advance(10);
      bulkhead.release();
    }
    expect(bulkhead.limit.rtt).toBe(100);
  });
});

describe("Bulkhead: its limit", () => {
  test("fixed at maxConcurrent unless adaptive is asked for; adaptive starts at 20, not below minConcurrent", () => {
    expect(new Bulkhead("svc", { maxConcurrent: 64, maxQueue: 0 }).load.limit).toBe(64);
    expect(new Bulkhead("svc", { maxConcurrent: 64, maxQueue: 0, adaptive: true }).load.limit).toBe(20);
    expect(new Bulkhead("svc", { maxConcurrent: 64, maxQueue: 0, adaptive: true, minConcurrent: 32 }).load.limit).toBe(32);
  });
});
