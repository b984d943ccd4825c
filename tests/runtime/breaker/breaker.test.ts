import { describe, expect, test } from "bun:test";
import { CircuitBreaker, isFailure, type BreakerOptions, type BreakerSnapshot, type BreakerState } from "../../../runtime/breaker/breaker";
import { Breakers, parseTarget } from "../../../runtime/breaker/call";
import { PlinthError } from "../../../runtime/errors";
import { rejection } from "../../helpers/errors";

/** Wall-clock time of the fake clock's zero. */
const EPOCH = Date.UTC(2026, 0, 1);
/** The wall-clock time (ISO) of a fake clock reading. */
const at = (t: number) => new Date(EPOCH + t).toISOString();

/** A clock the test moves by hand (the wall clock moves with it). */
function fakeClock(start = 1_000) {
  const clock = {
    t: start,
    now: () => clock.t,
    epoch: () => EPOCH + clock.t,
    advance(ms: number) {
      clock.t += ms;
    },
  };
  return clock;
}

const OPTIONS: BreakerOptions = { failureThreshold: 3, resetTimeoutMs: 1_000, halfOpenMaxCalls: 1 };

function setup(options: Partial<BreakerOptions> = {}) {
  const clock = fakeClock();
  const changes: BreakerState[] = [];
  const breaker = new CircuitBreaker("inventory", { ...OPTIONS, ...options }, clock, (state) => changes.push(state));
  return { clock, changes, breaker };
}

const ok = <T>(value: T) => () => Promise.resolve(value);
const boom = () => Promise.reject(new Error("boom"));

/** Runs a failing call and swallows its error (asserting it is the callee's error, not the breaker's). */
async function failOnce(breaker: CircuitBreaker, err: unknown = new Error("boom")): Promise<void> {
  const caught = await breaker.run(() => Promise.reject(err)).catch((e: unknown) => e);
  expect(caught).toBe(err);
}


/** A promise the test resolves or rejects later. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe("CircuitBreaker", () => {
  test("starts closed and passes values through", async () => {
    const { breaker } = setup();
    expect(breaker.state).toBe("closed");
    expect(await breaker.run(ok(42))).toBe(42);
    expect(breaker.state).toBe("closed");
  });

  test("stays closed below failureThreshold", async () => {
    const { breaker, changes } = setup();
    await failOnce(breaker);
    await failOnce(breaker);
    expect(breaker.state).toBe("closed");
    expect(breaker.snapshot().failures).toBe(2);
    expect(changes).toEqual([]);
    // still lets calls through
    expect(await breaker.run(ok("yes"))).toBe("yes");
  });

  test("opens at failureThreshold consecutive failures", async () => {
    const { breaker, changes } = setup();
    for (let i = 0; i < 3; i++) await failOnce(breaker);
    expect(breaker.state).toBe("open");
    expect(changes).toEqual(["open"]);
  });

  test("a success resets the failure count", async () => {
    const { breaker } = setup();
    await failOnce(breaker);
    await failOnce(breaker);
    await breaker.run(ok(1));
    expect(breaker.snapshot().failures).toBe(0);
    await failOnce(breaker);
    await failOnce(breaker);
    expect(breaker.state).toBe("closed");
    await failOnce(breaker);
    expect(breaker.state).toBe("open");
  });

  test("open rejects immediately with PLT_BREAKER_OPEN and does not call fn", async () => {
    const { breaker, clock } = setup();
    for (let i = 0; i < 3; i++) await failOnce(breaker);
    clock.advance(400);
    let called = 0;
    const err = await rejection(
      breaker.run(async () => {
        called++;
        return 1;
      }),
    );
    expect(called).toBe(0);
    expect(err.code).toBe("PLT_BREAKER_OPEN");
    expect(err.status).toBe(503);
    expect(err.retryable).toBe(true);
    expect(err.message).toContain("inventory");
    expect(err.data).toEqual({ service: "inventory", retryInMs: 600 });
  });

  test("a rejected call while open does not extend the open period", async () => {
    const { breaker, clock } = setup();
    for (let i = 0; i < 3; i++) await failOnce(breaker);
    clock.advance(999);
    await rejection(breaker.run(ok(1)));
    clock.advance(1);
    expect(breaker.state).toBe("half-open");
  });

  test("becomes half-open once resetTimeoutMs has passed", async () => {
    const { breaker, clock, changes } = setup();
    for (let i = 0; i < 3; i++) await failOnce(breaker);
    clock.advance(999);
    expect(breaker.state).toBe("open");
    clock.advance(1);
    expect(breaker.state).toBe("half-open");
    expect(changes).toEqual(["open", "half-open"]);
  });

  test("half-open allows only halfOpenMaxCalls concurrent probes", async () => {
    const { breaker, clock } = setup({ halfOpenMaxCalls: 2 });
    for (let i = 0; i < 3; i++) await failOnce(breaker);
    clock.advance(1_000);

    const first = deferred<string>();
    const second = deferred<string>();
    let calls = 0;
    const p1 = breaker.run(() => {
      calls++;
      return first.promise;
    });
    const p2 = breaker.run(() => {
      calls++;
      return second.promise;
    });
    const err = await rejection(
      breaker.run(() => {
        calls++;
        return Promise.resolve("third");
      }),
    );
    expect(err.code).toBe("PLT_BREAKER_OPEN");
    expect(calls).toBe(2);
    expect(breaker.state).toBe("half-open");

    first.resolve("a");
    second.resolve("b");
    expect(await p1).toBe("a");
    expect(await p2).toBe("b");
    expect(breaker.state).toBe("closed");
  });

  test("with one probe allowed, a second concurrent call is rejected", async () => {
    const { breaker, clock } = setup();
    for (let i = 0; i < 3; i++) await failOnce(breaker);
    clock.advance(1_000);
    const probe = deferred<number>();
    const p = breaker.run(() => probe.promise);
    const err = await rejection(breaker.run(ok(2)));
    expect(err.code).toBe("PLT_BREAKER_OPEN");
    probe.resolve(1);
    expect(await p).toBe(1);
  });

  test("a successful probe closes the breaker", async () => {
    const { breaker, clock, changes } = setup();
    for (let i = 0; i < 3; i++) await failOnce(breaker);
    clock.advance(1_000);
    expect(await breaker.run(ok("probe"))).toBe("probe");
    expect(breaker.state).toBe("closed");
    expect(breaker.snapshot().failures).toBe(0);
    expect(changes).toEqual(["open", "half-open", "closed"]);
    // fully closed again: needs the whole threshold to reopen
    await failOnce(breaker);
    await failOnce(breaker);
    expect(breaker.state).toBe("closed");
  });

  test("a failed probe reopens the breaker and restarts the open timer", async () => {
    const { breaker, clock, changes } = setup();
    for (let i = 0; i < 3; i++) await failOnce(breaker);
    clock.advance(1_500);
    expect(breaker.state).toBe("half-open");
    await failOnce(breaker);
    expect(breaker.state).toBe("open");
    expect(breaker.snapshot().retryAt).toBe(at(clock.now() + 1_000));
    clock.advance(999);
    expect(breaker.state).toBe("open");
    const err = await rejection(breaker.run(ok(1)));
    expect(err.code).toBe("PLT_BREAKER_OPEN");
    clock.advance(1);
    expect(breaker.state).toBe("half-open");
    expect(changes).toEqual(["open", "half-open", "open", "half-open"]);
  });

  test("4xx PlinthErrors do not count as failures", async () => {
    const { breaker, changes } = setup();
    for (let i = 0; i < 5; i++) await failOnce(breaker, new PlinthError("X", "m", { status: 409 }));
    await failOnce(breaker, new PlinthError("PLT_VALIDATION", "bad input"));
    expect(breaker.state).toBe("closed");
    expect(breaker.snapshot().failures).toBe(0);
    expect(changes).toEqual([]);
  });

  test("a 4xx resets the failure streak: the callee is answering", async () => {
    const { breaker } = setup();
    await failOnce(breaker);
    await failOnce(breaker);
    await failOnce(breaker, new PlinthError("X", "m", { status: 404 }));
    await failOnce(breaker);
    expect(breaker.snapshot()).toMatchObject({ state: "closed", failures: 1 });
  });

  test("a slow call that started while closed cannot close a breaker that opened since", async () => {
    const { breaker, changes } = setup({ failureThreshold: 1 });
    const slow = deferred<number>();
    const running = breaker.run(() => slow.promise);
    await failOnce(breaker); // opens
    slow.resolve(1);
    expect(await running).toBe(1);
    expect(breaker.state).toBe("open");
    expect(changes).toEqual(["open"]);
  });

  test("a slow failure from before cannot reopen a half-open breaker; only the probe decides", async () => {
    const { breaker, clock, changes } = setup({ failureThreshold: 1 });
    const slow = deferred<number>();
    const running = breaker.run(() => slow.promise).catch((e: unknown) => e);
    await failOnce(breaker); // opens
    clock.advance(1_000);
    expect(breaker.state).toBe("half-open");
    slow.reject(new Error("late"));
    await running;
    expect(breaker.state).toBe("half-open");
    expect(await breaker.run(ok(2))).toBe(2);
    expect(changes).toEqual(["open", "half-open", "closed"]);
  });

  test("PLT_TIMEOUT (504) counts as a failure", async () => {
    const { breaker } = setup();
    for (let i = 0; i < 3; i++) await failOnce(breaker, new PlinthError("PLT_TIMEOUT", "too slow"));
    expect(breaker.state).toBe("open");
  });

  test("5xx PlinthErrors and plain Errors count; a nested PLT_BREAKER_OPEN does not", () => {
    expect(isFailure(new Error("x"))).toBe(true);
    expect(isFailure("string thrown")).toBe(true);
    expect(isFailure(new PlinthError("PLT_TIMEOUT", "t"))).toBe(true);
    expect(isFailure(new PlinthError("PLT_HANDLER_ERROR", "h"))).toBe(true);
    expect(isFailure(new PlinthError("X", "m", { status: 409 }))).toBe(false);
    expect(isFailure(new PlinthError("X", "m", { status: 499 }))).toBe(false);
    expect(isFailure(new PlinthError("X", "m", { status: 500 }))).toBe(true);
    expect(isFailure(new PlinthError("PLT_BREAKER_OPEN", "downstream open"))).toBe(false);
  });

  test("a synchronous throw inside fn is treated like a rejection", async () => {
    const { breaker } = setup({ failureThreshold: 1 });
    const err = new Error("sync");
    const caught = await breaker
      .run(() => {
        throw err;
      })
      .catch((e: unknown) => e);
    expect(caught).toBe(err);
    expect(breaker.state).toBe("open");
  });

  test("onChange receives every transition in order with a consistent snapshot", async () => {
    const clock = fakeClock();
    const seen: Array<[BreakerState, BreakerState]> = [];
    const breaker = new CircuitBreaker("orders", { ...OPTIONS, failureThreshold: 1 }, clock, (state, snap) => seen.push([state, snap.state]));
    await failOnce(breaker); // → open
    clock.advance(1_000);
    await failOnce(breaker); // → half-open (lazily on run), → open
    clock.advance(1_000);
    await breaker.run(ok(1)); // → half-open, → closed
    expect(seen).toEqual([
      ["open", "open"],
      ["half-open", "half-open"],
      ["open", "open"],
      ["half-open", "half-open"],
      ["closed", "closed"],
    ]);
  });

  test("snapshot() reports state, failures, retryAt and times opened", async () => {
    const { breaker, clock } = setup();
    expect(breaker.snapshot()).toEqual({ state: "closed", failures: 0, window: { calls: 0, failures: 0, slow: 0 }, retryAt: null, opened: 0 });

    await failOnce(breaker);
    expect(breaker.snapshot()).toEqual({ state: "closed", failures: 1, window: { calls: 1, failures: 1, slow: 0 }, retryAt: null, opened: 0 });

    await failOnce(breaker);
    await failOnce(breaker);
    const openedAt = clock.now();
    expect(breaker.snapshot()).toEqual({ state: "open", failures: 3, window: { calls: 0, failures: 0, slow: 0 }, retryAt: at(openedAt + 1_000), opened: 1 });

    clock.advance(1_000);
    expect(breaker.snapshot()).toEqual({ state: "half-open", failures: 3, window: { calls: 0, failures: 0, slow: 0 }, retryAt: null, opened: 1 });

    await failOnce(breaker);
    expect(breaker.snapshot()).toEqual({ state: "open", failures: 4, window: { calls: 0, failures: 0, slow: 0 }, retryAt: at(clock.now() + 1_000), opened: 2 });

    clock.advance(1_000);
    await breaker.run(ok(1));
    expect(breaker.snapshot()).toEqual({ state: "closed", failures: 0, window: { calls: 0, failures: 0, slow: 0 }, retryAt: null, opened: 2 });
  });
});

describe("parseTarget", () => {
  test("splits service and action", () => {
    expect(parseTarget("inventory.reserve")).toEqual({ service: "inventory", action: "reserve" });
  });

  test("the action may contain dots; the service ends at the first dot", () => {
    expect(parseTarget("inventory.stock.reserve")).toEqual({ service: "inventory", action: "stock.reserve" });
  });

  test("accepts the $node pseudo-service", () => {
    expect(parseTarget("$node.health")).toEqual({ service: "$node", action: "health" });
  });

  test.each([
    ["no dot", "inventory"],
    ["empty service", ".reserve"],
    ["empty action", "inventory."],
    ["empty string", ""],
    ["upper-case service", "Inventory.reserve"],
    ["service starting with a digit", "1nventory.reserve"],
    ["unknown $ service", "$other.reserve"],
    ["a number", 42],
    ["null", null],
    ["an object", { service: "inventory", action: "reserve" }],
  ])("rejects %s with PLT_BAD_REQUEST", (_label, target) => {
    let caught: unknown;
    try {
      parseTarget(target);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(PlinthError);
    expect((caught as PlinthError).code).toBe("PLT_BAD_REQUEST");
    expect((caught as PlinthError).status).toBe(400);
    expect((caught as PlinthError).message).toContain(JSON.stringify(target));
  });
});

describe("Breakers", () => {
  test("guard keeps one breaker per service", async () => {
    const clock = fakeClock();
    const breakers = new Breakers({ ...OPTIONS, failureThreshold: 2 }, clock);
    expect(breakers.get("inventory")).toBe(breakers.get("inventory"));
    expect(breakers.get("inventory")).not.toBe(breakers.get("payments"));

    for (let i = 0; i < 2; i++) {
      await breakers.guard("inventory", boom).catch(() => {});
    }
    // inventory is open; payments is unaffected
    const err = await rejection(breakers.guard("inventory", ok(1)));
    expect(err.code).toBe("PLT_BREAKER_OPEN");
    expect(await breakers.guard("payments", ok("paid"))).toBe("paid");
  });

  describe("guardReported: the call reports its own end, the layer adds no promise", () => {
    const reportedFailure = (breakers: Breakers, service: string) =>
      breakers.guardReported(service, (report) => {
        const err = new PlinthError("PLT_TIMEOUT", "no answer");
        report(err);
        return Promise.reject(err);
      });

    test("failures it reports open the breaker; 4xx ones do not; then it refuses without starting the call", async () => {
      const breakers = new Breakers({ ...OPTIONS, failureThreshold: 2 }, fakeClock());
      const notFound = new PlinthError("PLT_NOT_FOUND", "no such order");
      await breakers.guardReported("orders", (report) => (report(notFound), Promise.reject(notFound))).catch(() => {});
      expect(breakers.get("orders").state).toBe("closed");
      for (let i = 0; i < 2; i++) await reportedFailure(breakers, "orders").catch(() => {});
      expect(breakers.get("orders").state).toBe("open");
      let started = false;
      const err = await rejection(breakers.guardReported("orders", () => ((started = true), Promise.resolve(1))));
      expect(err.code).toBe("PLT_BREAKER_OPEN");
      expect(started).toBe(false);
    });

    test("the bulkhead slot is held until the call reports, and freed once even if it reports twice", async () => {
      const breakers = new Breakers(OPTIONS, fakeClock(), () => {}, { maxConcurrent: 1, maxQueue: 0 });
      let report!: (err?: unknown) => void;
      const first = breakers.guardReported("orders", (r) => ((report = r), Promise.resolve("first")));
      expect((await rejection(breakers.guardReported("orders", () => Promise.resolve("second")))).code).toBe("PLT_BULKHEAD_FULL");
      report();
      report();
      expect(await first).toBe("first");
      // One slot again, not two: a call that has not reported holds it, the next is refused.
      expect(await breakers.guardReported("orders", () => Promise.resolve("third"))).toBe("third");
      expect((await rejection(breakers.guardReported("orders", () => Promise.resolve("fourth")))).code).toBe("PLT_BULKHEAD_FULL");
    });

    test("a start that throws is reported as a failure and frees its slot", async () => {
      const breakers = new Breakers({ ...OPTIONS, failureThreshold: 1 }, fakeClock(), () => {}, { maxConcurrent: 1, maxQueue: 0 });
      await breakers.guardReported("orders", () => {
        throw new Error("broken");
      }).catch(() => {});
      expect(breakers.get("orders").state).toBe("open");
    });
  });

  test("snapshot() lists every breaker by service", async () => {
    const clock = fakeClock();
    const breakers = new Breakers({ ...OPTIONS, failureThreshold: 1 }, clock);
    expect(breakers.snapshot()).toEqual({});
    await breakers.guard("inventory", boom).catch(() => {});
    await breakers.guard("payments", ok(1));
    expect(breakers.snapshot()).toEqual({
      inventory: { state: "open", failures: 1, window: { calls: 0, failures: 0, slow: 0 }, retryAt: at(clock.now() + 1_000), opened: 1 },
      payments: { state: "closed", failures: 0, window: { calls: 1, failures: 0, slow: 0 }, retryAt: null, opened: 0 },
    });
  });

  test("forget() drops a service's breakers (its actions' too); the next call reads the settings in force", async () => {
    const clock = fakeClock();
    let threshold = 1;
    const breakers = new Breakers({ ...OPTIONS, failureThreshold: 5 }, clock, () => {}, undefined, (target) =>
      target === "inventory" ? { failureThreshold: threshold } : target === "inventory.reserve" ? { slowCallMs: 10 } : undefined,
    );
    await breakers.guard("inventory", boom).catch(() => {});
    expect(breakers.get("inventory").state).toBe("open");
    const reserve = breakers.get("inventory", "reserve");
    const payments = breakers.get("payments");
    threshold = 3; // a new version of the plugin with other settings
    breakers.forget("inventory");
    expect(breakers.get("inventory").state).toBe("closed");
    expect(breakers.get("inventory", "reserve")).not.toBe(reserve);
    expect(breakers.get("payments")).toBe(payments);
    for (let i = 0; i < 2; i++) await breakers.guard("inventory", boom).catch(() => {});
    expect(breakers.get("inventory").state).toBe("closed"); // 2 < the new threshold of 3
    await breakers.guard("inventory", boom).catch(() => {});
    expect(breakers.get("inventory").state).toBe("open");
  });

  test("the listener receives (service, state, snapshot) for each transition", async () => {
    const clock = fakeClock();
    const events: Array<[string, BreakerState, BreakerSnapshot]> = [];
    const breakers = new Breakers({ ...OPTIONS, failureThreshold: 1 }, clock, (service, state, snapshot) =>
      events.push([service, state, snapshot]),
    );
    await breakers.guard("inventory", boom).catch(() => {});
    const openedAt = clock.now();
    clock.advance(1_000);
    await breakers.guard("inventory", ok(1));
    await breakers.guard("payments", ok(1)); // no transition, no event

    expect(events).toEqual([
      ["inventory", "open", { state: "open", failures: 1, window: { calls: 0, failures: 0, slow: 0 }, retryAt: at(openedAt + 1_000), opened: 1 }],
      ["inventory", "half-open", { state: "half-open", failures: 1, window: { calls: 0, failures: 0, slow: 0 }, retryAt: null, opened: 1 }],
      ["inventory", "closed", { state: "closed", failures: 0, window: { calls: 0, failures: 0, slow: 0 }, retryAt: null, opened: 1 }],
    ]);
  });
  describe("retire(): a service taken out of the platform", () => {
    test("its breakers (its actions' too) and its bulkhead leave the registry; other services keep theirs", async () => {
      const breakers = new Breakers(OPTIONS, fakeClock(), () => {}, { maxConcurrent: 1, maxQueue: 0 }, (target) =>
        target === "inventory.reserve" ? { slowCallMs: 10 } : undefined,
      );
      await breakers.guard("inventory", boom).catch(() => {});
      breakers.get("inventory", "reserve");
      const payments = breakers.get("payments");
      let release!: () => void;
      const held = breakers.guardReported("inventory", (report) => new Promise<void>((resolve) => (release = () => (report(), resolve()))));
      expect(Object.keys(breakers.snapshot()).sort()).toEqual(["inventory", "inventory.reserve", "payments"]);

      breakers.retire("inventory");
      expect(Object.keys(breakers.snapshot())).toEqual(["payments"]);
      expect(breakers.get("payments")).toBe(payments);
      // A service of that name added later starts from nothing: no failures, and a free bulkhead
      // although the retired one's last call still holds its slot.
      expect(breakers.get("inventory").snapshot().failures).toBe(0);
      expect(await breakers.guardReported("inventory", () => Promise.resolve("fresh"))).toBe("fresh");
      release();
      await held;
    });

    test("the transitions of its breaker's last calls are not reported", async () => {
      const clock = fakeClock();
      const events: Array<[string, BreakerState]> = [];
      const breakers = new Breakers({ ...OPTIONS, failureThreshold: 1 }, clock, (service, state) => events.push([service, state]));
      let fail!: (err: Error) => void;
      const inFlight = breakers.guard("inventory", () => new Promise((_, reject) => (fail = reject)));
      const old = breakers.get("inventory");
      breakers.retire("inventory");
      fail(new Error("worker stopped"));
      await inFlight.catch(() => {});
      expect(old.state).toBe("open"); // the call did count, on the breaker it started with
      clock.advance(1_000);
      expect(old.state).toBe("half-open");
      expect(events).toEqual([]);
      // Neither is a replaced version's: only the breaker now serving the name reports.
      await breakers.guard("inventory", boom).catch(() => {});
      expect(events).toEqual([["inventory", "open"]]);
    });
  });

  test("retryAt is a wall-clock time (ISO 8601), not a reading of the monotonic clock", async () => {
    const breakers = new Breakers({ ...OPTIONS, failureThreshold: 1, resetTimeoutMs: 60_000 });
    const before = Date.now();
    await breakers.guard("inventory", boom).catch(() => {});
    const after = Date.now();
    const retryAt = breakers.snapshot().inventory?.retryAt;
    expect(typeof retryAt).toBe("string");
    expect(new Date(retryAt!).toISOString()).toBe(retryAt!);
    // Opened between `before` and `after`: it retries a minute after (give or take rounding).
    expect(Date.parse(retryAt!)).toBeGreaterThanOrEqual(before + 60_000 - 1);
    expect(Date.parse(retryAt!)).toBeLessThanOrEqual(after + 60_000 + 1);
  });
});
