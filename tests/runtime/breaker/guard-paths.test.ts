/** Breakers: the paths a guarded call takes when its bulkhead is full or its breaker refuses it. */
import { expect, test } from "bun:test";
import { Breakers } from "../../../runtime/breaker/call";
import { rejection } from "../../helpers/errors";

/** A clock the test moves by hand; its wall clock moves with it. */
function fakeClock() {
  const clock = { t: 1_000, now: () => clock.t, epoch: () => 1_700_000_000_000 + clock.t, advance: (ms: number) => void (clock.t += ms) };
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

test("calls the open breaker refuses never reached the service: they do not make it look faster to its bulkhead", async () => {
  const clock = fakeClock();
  const breakers = new Breakers(OPTIONS, clock, () => {}, { maxConcurrent: 1, maxQueue: 1 });
  // The service's pace: one round of 8 calls of 100 ms (the last one fails, and opens the breaker).
  for (let i = 0; i < 8; i++) {
    const call = breakers.guard("svc", async () => {
      clock.advance(100);
      if (i === 7) throw new Error("boom");
      return i;
    });
    await (i === 7 ? expect(call).rejects.toThrow("boom") : call);
  }
  for (let i = 0; i < 16; i++) expect((await rejection(breakers.guard("svc", async () => "never"))).code).toBe("PLT_BREAKER_OPEN");
  clock.advance(1_000);
  let finish!: () => void;
  const probe = breakers.guard("svc", () => new Promise<string>((resolve) => (finish = () => resolve("probe"))));
  // The probe holds the one slot. A call that must be answered within 80 ms could not be, at 100 ms a call:
  // it is refused at once rather than queued.
  const tight = breakers.guard("svc", async () => "tight", undefined, undefined, clock.epoch() + 80);
  const outcome = tight.then(
    () => "started",
    (err: { code?: string }) => err.code,
  );
  finish();
  expect(await probe).toBe("probe");
  expect(await outcome).toBe("PLT_BULKHEAD_FULL");
});
