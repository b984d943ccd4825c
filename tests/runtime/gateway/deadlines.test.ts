/** Deadlines: a promise raced against a deadline (epoch ms) by one coarse sweep. */
import { expect, test } from "bun:test";
import { Deadlines } from "../../../runtime/gateway/deadlines";

const late = () => new Error("late");

test("a promise that settles in time keeps its value or its error", async () => {
  const deadlines = new Deadlines(late);
  expect(await deadlines.race(Promise.resolve(1), Date.now() + 10_000)).toBe(1);
  await expect(deadlines.race(Promise.reject(new Error("own")), Date.now() + 10_000)).rejects.toThrow("own");
});

test("past its deadline the race rejects with the deadline's error, while the promise is still pending", async () => {
  const deadlines = new Deadlines(late);
  const never = new Promise<number>(() => {});
  const started = Date.now();
  await expect(deadlines.race(never, started + 20)).rejects.toThrow("late");
  expect(Date.now() - started).toBeGreaterThanOrEqual(20);
});

test("each race keeps its own deadline: a later one is not rejected with an earlier one, and the sweep goes on for it", async () => {
  const deadlines = new Deadlines(late);
  const now = Date.now();
  const outcomes: string[] = [];
  const first = deadlines.race(new Promise(() => {}), now + 20).catch(() => outcomes.push("first"));
  const second = deadlines.race(new Promise(() => {}), now + 200).catch(() => outcomes.push("second"));
  await first;
  expect(outcomes).toEqual(["first"]);
  await second;
  expect(outcomes).toEqual(["first", "second"]);
  expect(Date.now() - now).toBeGreaterThanOrEqual(200);
  // Once nothing waits, a new race starts the sweep again.
  await expect(deadlines.race(new Promise(() => {}), Date.now() + 20)).rejects.toThrow("late");
});

test("no deadline (Infinity): the promise itself", async () => {
  const deadlines = new Deadlines(late);
  const p = Promise.resolve(7);
  expect(deadlines.race(p, Number.POSITIVE_INFINITY)).toBe(p);
});
