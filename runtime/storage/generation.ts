/**
 * The record, kept outside a service's SQLite file, of how far its outbox's
 * sequence numbers have gone: `<data>/<service>.log.json`. If the file loses
 * its last commits (its WAL deleted after a crash, an older copy put back),
 * its log would hand out the lost sequence numbers again, and a consumer whose
 * cursor is past them would skip the new events as already handled. With this
 * record a sequence number is never handed out twice:
 *
 * - numbers are reserved ahead (`reserved`), and the record is written (and
 *   synced) before a commit may use a number past the reservation;
 * - a clean stop writes the exact last number (`last`); a start after a crash
 *   continues past the reservation, since the last number is unknown;
 * - a log found shorter than it was known to be (below `last`, or below the
 *   highest number the file held when the previous run started) starts a new generation, and so
 *   does a log with rows but no record (a restored file): consumers that
 *   see a source's generation change take its events from the new start.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { join } from "node:path";

export interface LogRecord {
  /** The current generation's id, and the first sequence number it may use. */
  generation: string;
  start: number;
  /** The highest number in the file when the current run started... */
  seen: number;
  /** ...and the number the run's new ones start above (higher after a crash: the numbers reserved then may have been used). */
  floor: number;
  /** No number above this one has been handed out. */
  reserved: number;
  /** The last number used, written at a clean stop; null while a run holds the log. */
  last: number | null;
}

/** The generation consumers compare: its id, and its first sequence number. */
export interface LogGeneration {
  id: string;
  start: number;
}

/** Numbers reserved per write of the record (one synced write per 10,000 events). */
export const RESERVE = 10_000;

export const logRecordFile = (dataDir: string, service: string) => join(dataDir, `${service}.log.json`);

export function readLogRecord(file: string): LogRecord | null {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return null;
  }
  try {
    const r = JSON.parse(text) as Partial<LogRecord>;
    const n = (v: unknown) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
    if (typeof r.generation === "string" && n(r.start) && n(r.seen) && n(r.floor) && n(r.reserved) && (r.last === null || n(r.last))) return r as LogRecord;
  } catch {}
  return null; // unreadable: as if missing (a new generation)
}

/** Writes the record atomically and durably: a temporary file, synced, renamed over the old one. */
export function writeLogRecord(file: string, record: LogRecord): void {
  const temp = `${file}.tmp`;
  const fd = openSync(temp, "w");
  try {
    writeSync(fd, JSON.stringify(record));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, file);
}

export interface Continuation {
  record: LogRecord;
  /** Why a new generation started (null: the same one goes on). */
  rewound: string | null;
}

/**
 * Where a log whose highest sequence number in the file is `max` goes on, given its record:
 * the record to write before the first commit (floor: new numbers start above it).
 */
export function continueLog(previous: LogRecord | null, max: number, newId: () => string = randomId): Continuation {
  let floor = max;
  let rewound: string | null = null;
  if (!previous) {
    if (max > 0) rewound = `no record of its log beside the file (restored, or the record was removed): sequence numbers continue from ${max + 1}`;
  } else if (previous.last !== null) {
    floor = Math.max(max, previous.last, previous.floor);
    if (max < previous.last) rewound = `its log ends at ${max} but had reached ${previous.last} at the last clean stop`;
  } else {
    // After a crash the last number used is unknown: go on past everything that may have been handed out.
    floor = Math.max(max, previous.reserved, previous.floor);
    if (max < previous.seen) rewound = `its log ends at ${max}, below ${previous.seen} where the last run started`;
  }
  const same = previous !== null && rewound === null;
  const record: LogRecord = {
    generation: same ? previous.generation : newId(),
    start: same ? previous.start : floor + 1,
    seen: max,
    floor,
    reserved: floor + RESERVE,
    last: null,
  };
  return { record, rewound };
}

/** 64 random bits in hex: short, since every event envelope carries it. */
function randomId(): string {
  const [a, b] = crypto.getRandomValues(new Uint32Array(2));
  return a!.toString(16).padStart(8, "0") + b!.toString(16).padStart(8, "0");
}
