/**
 * The record beside each service's event log (runtime/storage/generation.ts): where a log goes on
 * after a clean stop, after a crash, and after it lost its last commits.
 */
import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { RESERVE, continueLog, readLogRecord, writeLogRecord, type LogRecord } from "../../../runtime/storage/generation";
import { tempDir } from "../../helpers/tmp";

const ids = (...list: string[]) => {
  const queue = [...list];
  return () => queue.shift()!;
};
const record = (r: Partial<LogRecord>): LogRecord => ({ generation: "g1", start: 1, seen: 0, floor: 0, reserved: RESERVE, last: null, ...r });

describe("continueLog", () => {
  test("a fresh log starts generation 1 at seq 1 with numbers reserved ahead", () => {
    expect(continueLog(null, 0, ids("a"))).toEqual({ record: { generation: "a", start: 1, seen: 0, floor: 0, reserved: RESERVE, last: null }, rewound: null });
  });

  test("after a clean stop the same generation goes on right after the last number", () => {
    const { record: next, rewound } = continueLog(record({ last: 40, seen: 10, floor: 10 }), 40, ids("new"));
    expect(rewound).toBeNull();
    expect(next).toMatchObject({ generation: "g1", start: 1, seen: 40, floor: 40, reserved: 40 + RESERVE, last: null });
  });

  test("after a clean stop of a run that emitted nothing past a jump, the jump holds and nothing is taken for a rewind", () => {
    const { record: next, rewound } = continueLog(record({ seen: 30, floor: 10_030, last: 30 }), 30, ids("new"));
    expect(rewound).toBeNull();
    expect(next.floor).toBe(10_030);
  });

  test("after a crash numbers go on past the reservation: any of them may have been handed out", () => {
    const { record: next, rewound } = continueLog(record({ seen: 10, floor: 10, reserved: 10 + RESERVE }), 25, ids("new"));
    expect(rewound).toBeNull();
    expect(next).toMatchObject({ generation: "g1", seen: 25, floor: 10 + RESERVE, reserved: 10 + 2 * RESERVE });
  });

  test("a log shorter than at its last clean stop starts a new generation above the old numbers", () => {
    const { record: next, rewound } = continueLog(record({ seen: 10, floor: 10, last: 50 }), 20, ids("g2"));
    expect(rewound).toContain("ends at 20 but had reached 50");
    expect(next).toMatchObject({ generation: "g2", start: 51, floor: 50, seen: 20 });
  });

  test("a log shorter after a crash than when that run started is a rewind too", () => {
    const { record: next, rewound } = continueLog(record({ seen: 30, floor: 30, reserved: 30 + RESERVE }), 12, ids("g2"));
    expect(rewound).toContain("below 30");
    expect(next).toMatchObject({ generation: "g2", start: 30 + RESERVE + 1, floor: 30 + RESERVE });
  });

  test("rows but no record (a restored file) start a new generation after the file's highest number", () => {
    const { record: next, rewound } = continueLog(null, 70, ids("g9"));
    expect(rewound).toContain("no record");
    expect(next).toMatchObject({ generation: "g9", start: 71, floor: 70 });
  });
});

describe("the record file", () => {
  test("round-trips, and anything unreadable or malformed reads as no record", () => {
    using dir = tempDir("plinth-generation");
    const file = dir.join("orders.log.json");
    expect(readLogRecord(file)).toBeNull();
    writeLogRecord(file, record({ last: 3 }));
    expect(readLogRecord(file)).toEqual(record({ last: 3 }));
    for (const bad of ["", "{", "null", "[]", JSON.stringify({ ...record({}), start: -1 }), JSON.stringify({ ...record({}), generation: 7 }), JSON.stringify({ ...record({}), last: "x" })]) {
      writeFileSync(file, bad);
      expect(readLogRecord(file)).toBeNull();
    }
  });
});
