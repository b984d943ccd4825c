import { describe, expect, test } from "bun:test";
import { Bulkhead } from "../../../runtime/breaker/bulkhead";
import { Breakers } from "../../../runtime/breaker/call";
import { PlinthError } from "../../../runtime/errors";
import { rejection } from "../../helpers/errors";

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

describe("Bulkhead", () => {
  test("runs maxConcurrent at once, queues maxQueue in order, refuses the rest with PLT_BULKHEAD_FULL", async () => {
    const bulkhead = new Bulkhead("svc", { maxConcurrent: 2, maxQueue: 1 });
    const started: number[] = [];
    const gates = [gate(), gate(), gate()];
    const runs = gates.map((g, i) =>
      bulkhead.run(async () => {
        started.push(i);
        await g.opened;
        return i;
      }),
    );
    // Bulkhead has no timers here: once the microtasks queued so far have run, the first two started and the third waits.
    await new Promise((resolve) => setImmediate(resolve));
    expect(started).toEqual([0, 1]);
    expect(bulkhead.load).toEqual({ active: 2, queued: 1, limit: 2 });

    const refused = await rejection(bulkhead.run(async () => 99));
    expect(refused.code).toBe("PLT_BULKHEAD_FULL");
    expect(refused.status).toBe(503);
    expect(refused.message).toBe('service "svc" is at capacity');
    // No time bound on the queue: retry in a second.
    expect(refused.data).toEqual({ service: "svc", retryInMs: 1_000 });

    gates[0]!.open();
    await new Promise((resolve) => setImmediate(resolve));
    expect(started).toEqual([0, 1, 2]);
    gates[1]!.open();
    gates[2]!.open();
    expect(await Promise.all(runs)).toEqual([0, 1, 2]);
    expect(bulkhead.load).toEqual({ active: 0, queued: 0, limit: 2 });
  });

  test("a failing call frees its slot", async () => {
    const bulkhead = new Bulkhead("svc", { maxConcurrent: 1, maxQueue: 0 });
    await expect(bulkhead.run(() => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    expect(await bulkhead.run(async () => "next")).toBe("next");
  });
});

describe("Breakers.guard retries (idempotent calls)", () => {
  const options = { failureThreshold: 100, resetTimeoutMs: 1_000, halfOpenMaxCalls: 1 };

  test("retries callee failures up to `retries` times, then gives up with the last error", async () => {
    let calls = 0;
    const fail = () => {
      calls++;
      return Promise.reject(new Error(`fail ${calls}`));
    };
    const breakers = new Breakers(options);
    await expect(breakers.guard("svc", fail, { retries: 2, retryDelayMs: 1, deadline: Date.now() + 10_000 })).rejects.toThrow("fail 3");
    expect(calls).toBe(3);
  });

  test("succeeds on a later attempt", async () => {
    let calls = 0;
    const breakers = new Breakers(options);
    const value = await breakers.guard("svc", async () => {
      if (++calls < 3) throw new Error("not yet");
      return calls;
    }, { retries: 5, retryDelayMs: 1, deadline: Date.now() + 10_000 });
    expect(value).toBe(3);
  });

  test("never retries a caller's error, without `retry`, or past the deadline", async () => {
    const breakers = new Breakers(options);
    let calls = 0;
    const conflict = () => {
      calls++;
      return Promise.reject(new PlinthError("X", "no", { status: 409 }));
    };
    await expect(breakers.guard("a", conflict, { retries: 3, retryDelayMs: 1, deadline: Date.now() + 10_000 })).rejects.toThrow("no");
    expect(calls).toBe(1);

    calls = 0;
    const fail = () => {
      calls++;
      return Promise.reject(new Error("boom"));
    };
    await expect(breakers.guard("b", fail)).rejects.toThrow("boom");
    expect(calls).toBe(1);

    calls = 0;
    await expect(breakers.guard("c", fail, { retries: 3, retryDelayMs: 1_000, deadline: Date.now() + 100 })).rejects.toThrow("boom");
    expect(calls).toBe(1);
  });

  test("stops retrying once the breaker has opened", async () => {
    const breakers = new Breakers({ failureThreshold: 2, resetTimeoutMs: 60_000, halfOpenMaxCalls: 1 });
    let calls = 0;
    const fail = () => {
      calls++;
      return Promise.reject(new Error("boom"));
    };
    await expect(breakers.guard("svc", fail, { retries: 5, retryDelayMs: 1, deadline: Date.now() + 10_000 })).rejects.toThrow("boom");
    expect(calls).toBe(2);
    expect(breakers.get("svc").state).toBe("open");
  });
});

/** A clock the test moves by hand; its wall clock moves with it. */
function fakeClock() {
  const clock = { t: 1_000, now: () => clock.t, epoch: () => 1_700_000_000_000 + clock.t, advance: (ms: number) => void (clock.t += ms) };
  return clock;
}

/** A call's outcome as the queue reports it: started, or refused with an error. */
function track() {
  const started: string[] = [];
  const refused: Array<[string, PlinthError]> = [];
  const call = (name: string) => [() => void started.push(name), (err: PlinthError) => void refused.push([name, err])] as const;
  return { started, refused, call };
}

describe("Bulkhead: a queue bounded by time (fake clock)", () => {
  const OPTIONS = { maxConcurrent: 1, maxQueue: 100, maxQueueMs: 1_000 };

  test("a call waits at most maxQueueMs; then it is refused with when to retry, and never started", () => {
    const clock = fakeClock();
    const bulkhead = new Bulkhead("svc", OPTIONS, clock);
    const { started, refused, call } = track();
    expect(bulkhead.tryAcquire()).toBe(true);
    expect(bulkhead.enqueue(...call("a"))).toBeNull();
    clock.advance(999);
    bulkhead.sweep();
    expect(refused).toEqual([]);
    clock.advance(1);
    bulkhead.sweep();
    expect(refused.map(([name, err]) => [name, err.code, err.status, err.data])).toEqual([["a", "PLT_BULKHEAD_FULL", 503, { service: "svc", retryInMs: 1_000 }]]);
    expect(bulkhead.load).toEqual({ active: 1, queued: 0, limit: 1 });
    bulkhead.release();
    expect(started).toEqual([]);
    expect(bulkhead.load).toEqual({ active: 0, queued: 0, limit: 1 });
  });

  test("a call that waited too long is refused when its turn comes, not started late", () => {
    const clock = fakeClock();
    const bulkhead = new Bulkhead("svc", OPTIONS, clock);
    const { started, refused, call } = track();
    bulkhead.tryAcquire();
    bulkhead.enqueue(...call("late"), clock.epoch() + 300);
    clock.advance(100);
    bulkhead.enqueue(...call("fresh"));
    clock.advance(300); // "late" is past its deadline, no sweep has run yet
    bulkhead.release();
    expect(refused.map(([name]) => name)).toEqual(["late"]);
    expect(started).toEqual(["fresh"]);
  });

  test("a call that could not finish by its deadline is refused then (at once if it is already too late)", () => {
    const clock = fakeClock();
    const bulkhead = new Bulkhead("svc", OPTIONS, clock);
    const { refused, call } = track();
    // The service's pace: calls take 100 ms.
    for (let i = 0; i < 8; i++) {
      bulkhead.tryAcquire();
      const started = clock.now();
      clock.advance(100);
      bulkhead.release(started);
    }
    expect(bulkhead.limit.rtt).toBe(100);
    bulkhead.tryAcquire();
    // Its caller waits 400 ms more: it must start within 300 ms to be answered in time.
    expect(bulkhead.enqueue(...call("a"), clock.epoch() + 400)).toBeNull();
    clock.advance(299);
    bulkhead.sweep();
    expect(refused).toEqual([]);
    clock.advance(1);
    bulkhead.sweep();
    expect(refused.map(([name, err]) => [name, err.code])).toEqual([["a", "PLT_BULKHEAD_FULL"]]);
    // A deadline less than a round trip away: refused without queueing.
    expect(bulkhead.enqueue(...call("b"), clock.epoch() + 100)?.code).toBe("PLT_BULKHEAD_FULL");
    expect(bulkhead.load.queued).toBe(0);
  });

  test("oldest first while the queue can drain within the budget; past that, newest first, newcomers taken, the oldest shed in time", () => {
    const clock = fakeClock();
    const bulkhead = new Bulkhead("svc", OPTIONS, clock);
    // The service's pace: one slot, 100 ms a call.
    for (let i = 0; i < 8; i++) {
      bulkhead.tryAcquire();
      const started = clock.now();
      clock.advance(100);
      bulkhead.release(started);
    }
    bulkhead.tryAcquire();
    const { started, refused, call } = track();
    // Ten calls drain in 1,000 ms: oldest first.
    for (let i = 0; i < 10; i++) bulkhead.enqueue(...call(`a${i}`));
    bulkhead.release();
    expect(started).toEqual(["a0"]);
    // Eleven would take 1,100 ms: newest first, and newcomers are not refused for it.
    bulkhead.enqueue(...call("b0"));
    expect(bulkhead.refusal()).toBeNull();
    expect(bulkhead.enqueue(...call("b1"))).toBeNull();
    bulkhead.release();
    expect(started).toEqual(["a0", "b1"]);
    // Ten again: oldest first.
    bulkhead.release();
    expect(started).toEqual(["a0", "b1", "a1"]);
    // The rest are shed as their time runs out.
    clock.advance(1_000);
    bulkhead.sweep();
    expect(refused.map(([name]) => name)).toEqual(["a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "b0"]);
    expect(bulkhead.load.queued).toBe(0);
  });

  test("the same error object for every refusal of a bulkhead: built once", () => {
    const clock = fakeClock();
    const bulkhead = new Bulkhead("svc", { ...OPTIONS, maxQueue: 1 }, clock);
    const { refused, call } = track();
    bulkhead.tryAcquire();
    bulkhead.enqueue(...call("a"));
    const full = bulkhead.refusal();
    expect(full?.code).toBe("PLT_BULKHEAD_FULL");
    expect(bulkhead.enqueue(...call("b"))).toBe(full!);
    clock.advance(1_000);
    bulkhead.sweep();
    expect(refused[0]?.[1]).toBe(full!);
  });

  test("maxQueue bounds the calls waiting, whatever their wait", () => {
    const bulkhead = new Bulkhead("svc", { ...OPTIONS, maxQueue: 2 }, fakeClock());
    const { call } = track();
    bulkhead.tryAcquire();
    expect(bulkhead.enqueue(...call("a"))).toBeNull();
    expect(bulkhead.enqueue(...call("b"))).toBeNull();
    expect(bulkhead.enqueue(...call("c"))?.code).toBe("PLT_BULKHEAD_FULL");
  });

  test("handing slots over is a loop: 20,000 queued calls that end at once (their worker is gone) settle without recursion", async () => {
    const never = { failureThreshold: 1_000_000, minimumCalls: 1_000_000, resetTimeoutMs: 1_000, halfOpenMaxCalls: 1 };
    const breakers = new Breakers(never, fakeClock(), () => {}, { maxConcurrent: 1, maxQueue: 50_000 });
    let finish!: () => void;
    const first = breakers.guardReported("svc", (report) => new Promise<void>((resolve) => (finish = () => (report(), resolve()))));
    let starts = 0;
    const gone = (report: (err?: unknown) => void) => {
      starts++;
      const err = new PlinthError("PLT_SERVICE_UNAVAILABLE", "service is stopped");
      report(err); // synchronously, as a host without a worker does
      return Promise.reject(err);
    };
    const queued = Array.from({ length: 20_000 }, () => breakers.guardReported("svc", gone));
    finish();
    await first;
    const codes = new Set((await Promise.allSettled(queued)).map((r) => (r.status === "rejected" ? (r.reason as PlinthError).code : "fulfilled")));
    expect(codes).toEqual(new Set(["PLT_SERVICE_UNAVAILABLE"]));
    expect(starts).toBe(20_000);
    expect(await breakers.guardReported("svc", () => Promise.resolve("free again"))).toBe("free again");
  }, 30_000); // 20,000 calls: instrumented for mutation testing on a busy machine, it can take seconds
});

describe("Breakers.admits: what a call arriving now would get, asked before any work is done for it", () => {
  const breaker = { failureThreshold: 1, resetTimeoutMs: 1_000, halfOpenMaxCalls: 1 };

  test("null while there is room; PLT_BULKHEAD_FULL when the call could not wait; nothing taken or queued by asking", async () => {
    const breakers = new Breakers(breaker, fakeClock(), () => {}, { maxConcurrent: 1, maxQueue: 0 });
    expect(breakers.admits("svc")).toBeNull(); // not called yet
    let finish!: () => void;
    const held = breakers.guardReported("svc", (report) => new Promise<void>((resolve) => (finish = () => (report(), resolve()))));
    expect(breakers.admits("svc")?.code).toBe("PLT_BULKHEAD_FULL");
    expect(breakers.admits("svc")?.code).toBe("PLT_BULKHEAD_FULL");
    finish();
    await held;
    expect(breakers.admits("svc")).toBeNull();
    expect(await breakers.guardReported("svc", () => Promise.resolve(1))).toBe(1);
  });

  test("PLT_BREAKER_OPEN with when to retry while the breaker is open; half-open, asking takes no probe", async () => {
    const clock = fakeClock();
    const breakers = new Breakers(breaker, clock, () => {}, { maxConcurrent: 10, maxQueue: 10 });
    await breakers.guard("svc", () => Promise.reject(new Error("boom"))).catch(() => {});
    clock.advance(400);
    const open = breakers.admits("svc");
    expect(open?.code).toBe("PLT_BREAKER_OPEN");
    expect(open?.data).toEqual({ service: "svc", retryInMs: 600 });
    clock.advance(600);
    expect(breakers.admits("svc")).toBeNull();
    expect(breakers.admits("svc")).toBeNull();
    expect(await breakers.guard("svc", () => Promise.resolve("probe"))).toBe("probe");
    expect(breakers.get("svc").state).toBe("closed");
  });

  test("a caller whose deadline has passed is refused at once instead of queued", async () => {
    const clock = fakeClock();
    const breakers = new Breakers(breaker, clock, () => {}, { maxConcurrent: 1, maxQueue: 10 });
    let finish!: () => void;
    const held = breakers.guardReported("svc", (report) => new Promise<void>((resolve) => (finish = () => (report(), resolve()))));
    let started = false;
    const late = await rejection(breakers.guardReported("svc", () => ((started = true), Promise.resolve()), undefined, clock.epoch() - 1));
    expect(late.code).toBe("PLT_BULKHEAD_FULL");
    finish();
    await held;
    expect(started).toBe(false);
  });
});
