import { expect, test } from "bun:test";
import { PlinthError } from "../../../runtime/errors";
import { Heartbeat } from "../../../runtime/worker/heartbeat";
import { PendingRequests } from "../../../runtime/worker/pending";
import { rejection } from "../../helpers/errors";
import { eventually } from "../../helpers/eventually";

test("Heartbeat pings while pongs come back, and reports silence once", async () => {
  let pings = 0;
  const silent: number[] = [];
  let answering = true;
  const hb: Heartbeat = new Heartbeat(5, 40, () => {
    pings++;
    if (answering) hb.pong();
  }, (ms) => silent.push(ms));
  hb.start();
  await eventually(() => pings > 3 || silent.length > 0, 2_000);
  expect(silent).toEqual([]);
  answering = false;
  await eventually(() => silent.length > 0, 2_000);
  expect(silent[0]!).toBeGreaterThan(40);
  // Once: the heartbeat stops. A timer that no longer fires shows only as time passing without it, so
  // this is a window on purpose: five intervals.
  const after = pings;
  await Bun.sleep(25);
  expect([silent.length, pings]).toEqual([1, after]);
  hb.stop();
});

test("Heartbeat: a stall of the watching thread is not the worker's silence", async () => {
  const silent: number[] = [];
  let pings = 0;
  const hb: Heartbeat = new Heartbeat(5, 40, () => {
    pings++;
    // The worker answers at once, but its pong is read by this thread only after its next turn.
    setTimeout(() => hb.pong(), 0);
  }, (ms) => silent.push(ms));
  hb.start();
  await eventually(() => pings > 1, 2_000);
  const before = pings;
  Bun.sleepSync(150); // this thread blocked for well over the timeout
  // Three ticks after the stall, each of which would have reported silence (and stopped) instead of pinging.
  await eventually(() => pings >= before + 3 || silent.length > 0, 2_000);
  expect(silent).toEqual([]);
  hb.stop();
});

test("PendingRequests settles answers, times out the rest, fails all on demand", async () => {
  const pending = new PendingRequests(() => "svc");
  const a = pending.open(1_000);
  const b = pending.open(20);
  const c = pending.open(1_000);
  expect(pending.size).toBe(3);
  expect(pending.settle(a.id, { ok: true, value: "A" })).toBe(true);
  expect(await a.answer).toBe("A");
  const timedOut = await rejection(b.answer);
  expect(timedOut.code).toBe("PLT_TIMEOUT");
  expect(timedOut.message).toContain('"svc"');
  expect(pending.settle(b.id, { ok: true, value: "late" })).toBe(false);
  const failing = rejection(c.answer);
  pending.failAll(new PlinthError("PLT_SHUTTING_DOWN", "bye"));
  expect((await failing).code).toBe("PLT_SHUTTING_DOWN");
  expect(pending.size).toBe(0);
  await pending.drained(100);
});
