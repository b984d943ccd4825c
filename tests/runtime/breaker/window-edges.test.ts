/** The rolling window's edges: which bucket still counts, and what a reset forgets. */
import { expect, test } from "bun:test";
import { RollingWindow } from "../../../runtime/breaker/window";

function fakeClock(start = 1_000_000) {
  const clock = { t: start, now: () => clock.t };
  return clock;
}

test("the oldest bucket counts until the window has moved a whole bucket past it", () => {
  const clock = fakeClock();
  const window = new RollingWindow(1_000, 10, clock); // buckets of 100 ms
  const t0 = clock.t;
  window.record(true, false, t0);
  expect(window.totals(t0 + 900)).toEqual({ calls: 1, failures: 1, slow: 0 });
  expect(window.totals(t0 + 999)).toEqual({ calls: 1, failures: 1, slow: 0 });
  expect(window.totals(t0 + 1_000)).toEqual({ calls: 0, failures: 0, slow: 0 });
});

test("after a reset, what was recorded before it never leaves the totals again", () => {
  const clock = fakeClock();
  const window = new RollingWindow(1_000, 10, clock);
  const t0 = clock.t;
  for (let i = 0; i < 5; i++) window.record(true, true, t0);
  window.reset();
  for (let i = 0; i < 3; i++) window.record(false, false, t0 + 500);
  // The bucket of t0 leaves the window here: its calls were already forgotten by the reset.
  expect(window.totals(t0 + 1_050)).toEqual({ calls: 3, failures: 0, slow: 0 });
});
