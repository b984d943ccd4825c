/** [MQTT-2.3.1-4] Where a resumed session's new packet identifiers start (conformance/ids.ts). */
import { expect, test } from "bun:test";
import { freshStart } from "../../../../runtime/broker/conformance/ids";

test("[MQTT-2.3.1-4] new identifiers start after the longest run of identifiers in use, around 65535 included", () => {
  expect(freshStart([])).toBeUndefined();
  expect(freshStart([5])).toBe(6);
  expect(freshStart([65535])).toBe(1);
  expect(freshStart([100, 101, 102])).toBe(103);
  // Two clusters: the start of the longer free run (past 65535 and around, or between them).
  expect(freshStart([10, 11, 30_000, 30_001])).toBe(30_002);
  expect(freshStart([10, 11, 60_000, 60_001])).toBe(12);
  expect(freshStart([7, 7, 3])).toBe(8);
});
