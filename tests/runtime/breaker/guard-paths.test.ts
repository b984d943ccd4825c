/** Breakers: the paths a guarded call takes when its bulkhead is full or its breaker refuses it. */
import { expect, test } from "bun:test";
import { Breakers } from "../../../runtime/breaker/call";
import { rejection } from "../../helpers/errors";

function fakeClock() {
  const clock = { t: 1_000, now: () => clock.t, advance: (ms: number) => void (clock.t += ms) };
  return clock;
}

const OPTIONS = { failureThreshold: 1, resetTimeoutMs: 1_000, halfOpenMaxCalls: 1 };

test("a reported call the open breaker refuses gives its bulkhead slot back", async () => {
  const clock = fakeClock();
  const breakers = new Breakers(OPTIONS, clock, () => {}, { maxConcurrent: 1, maxQueue: 0 });
  await expect(breakers.guard("svc", () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
  expect(breakers.get("svc").state).toBe("open");
  const refused = await rejection(breakers.guardReported("svc", async () => "never"));
  expect(refused.code).toBe("PLT_BREAKER_OPEN");
  clock.advance(1_000); // half-open: the probe needs the one slot
  expect(await breakers.guardReported("svc", async (report) => (report(), "probe"))).toBe("probe");
  expect(breakers.get("svc").state).toBe("closed");
});

test("without retries, a call that finds every slot taken waits for one", async () => {
  const breakers = new Breakers(OPTIONS, fakeClock(), () => {}, { maxConcurrent: 1, maxQueue: 1 });
  let finish!: () => void;
  const first = breakers.guard("svc", () => new Promise<string>((resolve) => (finish = () => resolve("first"))));
  const second = breakers.guard("svc", async () => "second");
  finish();
  expect(await Promise.all([first, second])).toEqual(["first", "second"]);
});

test("admits() a call to an action with no breaker of its own yet, of a service already in use", async () => {
  const breakers = new Breakers(OPTIONS, fakeClock());
  expect(await breakers.guard("svc", async () => "ok")).toBe("ok");
  expect(breakers.admits("svc", "never-called")).toBeNull();
});
