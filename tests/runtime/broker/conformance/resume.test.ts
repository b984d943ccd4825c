/** [MQTT-4.4.0-1] A resumed session's message goes by the queue or live, whichever takes it first (conformance/resume.ts). */
import { expect, test } from "bun:test";
import { Resumption } from "../../../../runtime/broker/conformance/resume";

test("[MQTT-4.4.0-1] while the queue is read, a message sent live is skipped by the queue, and one the queue sent is skipped live", () => {
  const r = new Resumption();
  expect(r.takeLive(1)).toBe(true);
  expect(r.takeQueued(1)).toBe(false);
  expect(r.takeQueued(2)).toBe(true);
  expect(r.takeLive(2)).toBe(false);
  // Each skip happens once: a later delivery of the same counter (none is expected) is not held back.
  expect(r.takeLive(2)).toBe(true);
});

test("[MQTT-4.4.0-1] once the queue is read, live messages are not remembered; what the queue sent still is", () => {
  const r = new Resumption();
  expect(r.takeQueued(5)).toBe(true);
  r.doneReading();
  expect(r.takeLive(6)).toBe(true);
  expect(r.takeQueued(6)).toBe(true); // not remembered: the queue read before it came
  expect(r.takeLive(5)).toBe(false);
});
