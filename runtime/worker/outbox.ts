/**
 * The transactional outbox, inside a service's own database. Events a handler
 * emits are inserted in the handler's transaction, so they commit (or roll
 * back) with its writes; the host publishes them after commit and acks them
 * back ("sent"), and the acks are written with the next group commit. Rows never
 * marked sent are published again at the next start. Sequence numbers are
 * never handed out twice, even when the file loses its last commits: see
 * storage/generation.ts for the record kept beside the file.
 *
 * What was published is kept as ranges of seqs (`_plinth_outbox_sent`), not per row: acks come
 * in commit order, so a group's acks extend one range by one UPDATE of one row, where marking each
 * row rewrote it (3 µs per event on this machine). Rows of files written before 0.3 carry their
 * own `sent_at`. `_plinth_outbox_state` is the log with a `sent` column, for people and tests.
 */
import type { Database, Statement } from "bun:sqlite";
import type { CommittedEvent, EmitRequest } from "../protocol";
import { PlinthError } from "../errors";
import { MAX_DATA_DEPTH } from "./channel";
import { nestsDeeperThan } from "../json-depth";
import { RESERVE, continueLog, readLogRecord, writeLogRecord, type LogGeneration, type LogRecord } from "../storage/generation";

export class Outbox {
  private readonly insert: Statement;
  private readonly extendRange: Statement;
  private readonly addRange: Statement;
  private readonly selectUnsent: Statement;
  private sentSincePrune = 0;
  /** Acks received and not yet written (see markSentLater). */
  private acked: number[] = [];
  /** The log's record (null: none kept, numbers start above the file's highest). */
  private record: LogRecord | null = null;

  constructor(
    private readonly db: Database,
    /** Sent rows kept as the service's event log: at most this many... */
    private readonly retainSent: number,
    /** ...published at most this long ago. Unsent rows are never pruned. */
    private readonly retainSentMs = Number.POSITIVE_INFINITY,
    /** Where the log's record is kept (storage/generation.ts); told why, when a new generation starts. */
    private readonly recordFile?: string,
    onRewound: (why: string, generation: LogGeneration) => void = () => {},
  ) {
    // Lean on purpose: each index or AUTOINCREMENT is one more page written by every commit that
    // emits (36 µs → 11 µs per event on this machine). `seq` stays monotonic without AUTOINCREMENT
    // because prune() never deletes the newest row; relay's scan of unsent rows is rare (start-up).
    db.exec(`CREATE TABLE IF NOT EXISTS _plinth_outbox (
      seq INTEGER PRIMARY KEY,
      id TEXT NOT NULL,
      type TEXT NOT NULL,
      time TEXT NOT NULL,
      data TEXT NOT NULL,
      sent_at TEXT
    )`);
    db.exec("DROP INDEX IF EXISTS _plinth_outbox_unsent"); // written by versions before 0.2
    db.exec("CREATE TABLE IF NOT EXISTS _plinth_outbox_sent (lo INTEGER PRIMARY KEY, hi INTEGER NOT NULL)");
    db.exec(`CREATE VIEW IF NOT EXISTS _plinth_outbox_state AS
      SELECT seq, id, type, time, data, ${SENT} AS sent FROM _plinth_outbox o`);
    this.extendRange = db.query("UPDATE _plinth_outbox_sent SET hi = ?2 WHERE hi = ?1 - 1");
    this.addRange = db.query("INSERT INTO _plinth_outbox_sent (lo, hi) VALUES (?, ?) ON CONFLICT (lo) DO UPDATE SET hi = max(hi, excluded.hi)");
    this.selectUnsent = db.query(`SELECT seq, id, type, time, data FROM _plinth_outbox o WHERE seq > ? AND NOT ${SENT} ORDER BY seq LIMIT ?`);
    if (recordFile) {
      const { record, rewound } = continueLog(readLogRecord(recordFile), this.highest());
      writeLogRecord(recordFile, record);
      this.record = record;
      if (rewound) onRewound(rewound, { id: record.generation, start: record.start });
    }
    // SQLite numbers a row one above the highest; while the file holds none above the record's floor
    // (just after it lost its last commits), the floor is said in each INSERT. prune() never deletes
    // the newest row, so once one above the floor is committed, SQLite's own numbering is enough.
    this.insert =
      this.highest() >= (this.record?.floor ?? 0)
        ? db.query("INSERT INTO _plinth_outbox (id, type, time, data) VALUES (?2, ?3, ?4, ?5)")
        : db.query("INSERT INTO _plinth_outbox (seq, id, type, time, data) VALUES ((SELECT max(coalesce(max(seq), 0), ?1) + 1 FROM _plinth_outbox), ?2, ?3, ?4, ?5)");
  }

  /** The log's current generation (null when no record is kept). */
  get generation(): LogGeneration | null {
    return this.record && { id: this.record.generation, start: this.record.start };
  }

  private highest(): number {
    return (this.db.query("SELECT coalesce(max(seq), 0) AS max FROM _plinth_outbox").get() as { max: number }).max;
  }

  /** A clean stop: the record gets the exact last number (a start after a crash must skip the reservation). */
  close(): void {
    if (!this.record || !this.recordFile) return;
    // The log opened again since (a new version of the service during a hot replacement): the record is its own now.
    if (readLogRecord(this.recordFile)?.reserved !== this.record.reserved) return;
    writeLogRecord(this.recordFile, { ...this.record, last: this.highest() });
  }

  /**
   * Inserts events; call inside the handler's transaction. Throws PLT_EVENT_INVALID (and the
   * handler's unit rolls back) for data JSON cannot carry or nested deeper than MAX_DATA_DEPTH:
   * every committed event can cross to the host and on to its subscribers.
   */
  add(events: EmitRequest[]): CommittedEvent[] {
    const floor = this.record?.floor ?? 0;
    return events.map((e) => {
      const seq = Number(this.insert.run(floor, e.id, e.type, e.time, dataText(e)).lastInsertRowid);
      // Past the reservation: the record must say so on disk before this commit can be acknowledged.
      if (this.record && seq > this.record.reserved) {
        this.record = { ...this.record, reserved: seq + RESERVE };
        writeLogRecord(this.recordFile!, this.record);
      }
      return { ...e, seq };
    });
  }

  /** Committed events after `afterSeq` not yet acknowledged as published, oldest first. */
  unsent(afterSeq = 0, limit = 1_000): CommittedEvent[] {
    return (this.selectUnsent.all(afterSeq, limit) as Array<Omit<CommittedEvent, "data"> & { data: string }>).map((row) => ({
      ...row,
      data: JSON.parse(row.data) as unknown,
    }));
  }

  /**
   * Holds acks to write with the next group commit (UnitOfWork calls flushSent when it opens one),
   * instead of committing them on their own: that commit writes the same pages anyway (1.2 µs less
   * per event here). The worker writes them alone if no group comes within 20 ms. Acks lost with a
   * crash or a failed commit only mean those events are published again at the next relay: at
   * least once, as always.
   */
  markSentLater(seqs: number[]): void {
    for (const seq of seqs) this.acked.push(seq);
  }

  /** Writes the held acks: inside an open transaction they commit with it, otherwise on their own. */
  flushSent(): void {
    if (this.acked.length === 0) return;
    const seqs = this.acked;
    this.acked = [];
    this.markSent(seqs);
  }

  markSent(seqs: number[]): void {
    // Acks come in commit order, mostly consecutive: each run of consecutive seqs extends the range
    // that ends just below it, or starts one.
    const sorted = seqs.length > 1 ? seqs.toSorted((a, b) => a - b) : seqs;
    this.db.transaction(() => {
      let from = sorted[0]!;
      for (let i = 1; i <= sorted.length; i++) {
        if (i < sorted.length && sorted[i]! <= sorted[i - 1]! + 1) continue;
        if (this.extendRange.run(from, sorted[i - 1]!).changes === 0) this.addRange.run(from, sorted[i - 1]!);
        from = sorted[i]!;
      }
    })();
    this.sentSincePrune += seqs.length;
    if (this.sentSincePrune >= Math.max(100, this.retainSent / 10)) this.prune();
  }

  /**
   * Keeps the newest `retainSent` sent rows, none committed longer than `retainSentMs` ago; unsent
   * rows are never pruned, and neither is the newest row, so a new row's seq is always above every
   * earlier one. Then merges the ranges of sent seqs that nothing unsent lies between.
   */
  prune(now = Date.now()): void {
    this.sentSincePrune = 0;
    this.db
      .query(`DELETE FROM _plinth_outbox AS o WHERE seq <= (SELECT MAX(seq) FROM _plinth_outbox) - ? AND ${SENT}`)
      .run(Math.max(1, this.retainSent));
    if (Number.isFinite(this.retainSentMs)) {
      const cutoff = new Date(now - this.retainSentMs).toISOString();
      this.db
        .query(`DELETE FROM _plinth_outbox AS o WHERE time < ? AND seq < (SELECT MAX(seq) FROM _plinth_outbox) AND ${SENT}`)
        .run(cutoff);
    }
    this.mergeRanges();
  }

  /** Ranges with no row between them (adjacent, or apart by pruned rows or a new generation's floor) become one. */
  private mergeRanges(): void {
    const ranges = this.db.query("SELECT lo, hi FROM _plinth_outbox_sent ORDER BY lo").all() as Array<{ lo: number; hi: number }>;
    if (ranges.length < 2) return;
    const between = this.db.query("SELECT 1 FROM _plinth_outbox WHERE seq > ? AND seq < ? LIMIT 1");
    const merged = [ranges[0]!];
    for (const next of ranges.slice(1)) {
      const last = merged.at(-1)!;
      if (next.lo <= last.hi + 1 || !between.get(last.hi, next.lo)) last.hi = Math.max(last.hi, next.hi);
      else merged.push(next);
    }
    if (merged.length === ranges.length) return;
    this.db.transaction(() => {
      this.db.exec("DELETE FROM _plinth_outbox_sent");
      for (const r of merged) this.addRange.run(r.lo, r.hi);
    })();
  }
}

/** Whether outbox row `o` was published: inside a range of sent seqs, or marked by a version before 0.3. */
const SENT = "(o.sent_at IS NOT NULL OR EXISTS (SELECT 1 FROM _plinth_outbox_sent r WHERE r.lo <= o.seq AND o.seq <= r.hi))";

function dataText(e: EmitRequest): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(e.data);
  } catch (err) {
    throw new PlinthError("PLT_EVENT_INVALID", `emit ${e.type}: ${err instanceof RangeError ? `data nested deeper than ${MAX_DATA_DEPTH} levels` : `data JSON cannot carry (${(err as Error).message})`}`);
  }
  if (text === undefined) throw new PlinthError("PLT_EVENT_INVALID", `emit ${e.type}: data JSON cannot carry (a ${typeof e.data})`);
  if (nestsDeeperThan(text, MAX_DATA_DEPTH)) throw new PlinthError("PLT_EVENT_INVALID", `emit ${e.type}: data nested deeper than ${MAX_DATA_DEPTH} levels`);
  return text;
}
