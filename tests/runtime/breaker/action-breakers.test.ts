/**
 * Which breaker a call to `service.action` meets: the service's, or the action's own when it has
 * settings of its own (read at its first call, kept until the service is forgotten), and what
 * `admits()` answers for each action called so far.
 */
import { expect, test } from "bun:test";
import { Breakers } from "../../../runtime/breaker/call";
import { rejection } from "../../helpers/errors";

function fakeClock() {
  const clock = { t: 1_000, now: () => clock.t, advance: (ms: number) => void (clock.t += ms) };
  return clock;
}

const OPTIONS = { failureThreshold: 1, resetTimeoutMs: 1_000, halfOpenMaxCalls: 1 };
const boom = () => Promise.reject(new Error("boom"));
const ok = () => Promise.resolve("ok");

test("admits() answers for every action called so far, not only the last one", async () => {
  const breakers = new Breakers(OPTIONS, fakeClock());
  await expect(breakers.guard("inventory", boom, undefined, "reserve")).rejects.toThrow("boom");
  // The actions share the service's breaker: open now, it refuses the next action called too.
  expect((await rejection(breakers.guard("inventory", ok, undefined, "list"))).code).toBe("PLT_BREAKER_OPEN");
  expect(breakers.admits("inventory", "reserve")?.code).toBe("PLT_BREAKER_OPEN");
  expect(breakers.admits("inventory", "list")?.code).toBe("PLT_BREAKER_OPEN");
  expect(breakers.admits("payments", "list")).toBeNull();
});

test("an action keeps the breaker it was given at its first call, whatever its settings say since, until the service is forgotten", async () => {
  const clock = fakeClock();
  let ownSettings = true;
  const breakers = new Breakers({ ...OPTIONS, failureThreshold: 5 }, clock, () => {}, undefined, (target) =>
    target === "inventory.reserve" && ownSettings ? { failureThreshold: 1 } : undefined,
  );
  await expect(breakers.guard("inventory", boom, undefined, "reserve")).rejects.toThrow("boom");
  // reserve's own breaker opened at its first failure; the service's breaker did not see it.
  expect((await rejection(breakers.guard("inventory", ok, undefined, "reserve"))).code).toBe("PLT_BREAKER_OPEN");
  expect(await breakers.guard("inventory", ok, undefined, "list")).toBe("ok");

  ownSettings = false;
  expect((await rejection(breakers.guard("inventory", ok, undefined, "reserve"))).code).toBe("PLT_BREAKER_OPEN");
  expect(breakers.admits("inventory", "reserve")?.code).toBe("PLT_BREAKER_OPEN");

  breakers.forget("inventory");
  // Read again now: reserve has no settings of its own any more and shares the service's (closed) breaker.
  expect(await breakers.guard("inventory", ok, undefined, "reserve")).toBe("ok");
  expect(Object.keys(breakers.snapshot())).toEqual(["inventory"]);
});

test("with no bulkhead settings, calls neither wait nor are refused for capacity", async () => {
  const breakers = new Breakers(OPTIONS, fakeClock());
  const finishes: Array<() => void> = [];
  const calls = Array.from({ length: 100 }, (_, i) => breakers.guard("inventory", () => new Promise<number>((resolve) => finishes.push(() => resolve(i)))));
  expect(finishes).toHaveLength(100); // all started at once
  expect(breakers.admits("inventory")).toBeNull();
  for (const finish of finishes) finish();
  expect(await Promise.all(calls)).toEqual(Array.from({ length: 100 }, (_, i) => i));
});
