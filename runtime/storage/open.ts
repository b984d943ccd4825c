/**
 * Opens a SQLite file the way every store of the platform is opened (each
 * service's own file, the broker's): WAL, a busy timeout, and the durability
 * level of `data.durability`.
 *
 * - "full" (synchronous=FULL): each commit reaches the disk (fsync of the WAL)
 *   before it returns, so before anything is acknowledged. Survives a process
 *   crash, an OS crash or power loss, and the file system turning read-only.
 * - "normal" (synchronous=NORMAL): a commit is written to the WAL but synced
 *   only at checkpoints. Survives a process crash; an OS crash, power loss or
 *   the file system going read-only may lose the last commits acknowledged.
 *
 * Group commit keeps "full" affordable: a worker's synchronous handlers share
 * one transaction (worker/unit.ts) and the broker's writes too
 * (broker/persistence/commit.ts), so one fsync covers many acknowledgements.
 *
 * Damage is found before a store serves: with `quickCheckMaxBytes` set (at
 * start, from `data.quickCheckMaxBytes`) a file up to that size gets
 * `PRAGMA quick_check` when opened; a larger one is logged as not checked
 * (`plinth check` does it). A damaged file, or one that is not SQLite at all,
 * fails its opening with PLT_STORAGE_CORRUPT naming the file and SQLite's first
 * complaint, so its service fails at load (the broker's: start-up fails).
 */
import { Database } from "bun:sqlite";
import { closeSync, openSync, readSync } from "node:fs";
import type { Config } from "../../config/schema";
import { PlinthError } from "../errors";
import { createLogger, type Logger } from "../log";
import { fileBytes, isDamage, problems, storageCorrupt } from "./check";
import { autoCheckpointPages } from "./checkpointer";

export type Durability = "full" | "normal";

export interface StoreOptions {
  durability: Durability;
  /** `PRAGMA wal_autocheckpoint` (see checkpointer.ts); unset: SQLite's default, 1,000 pages. */
  autoCheckpointPages?: number;
  /** `PRAGMA quick_check` at open for a file of at most this many bytes; unset or 0: no check. */
  quickCheckMaxBytes?: number;
}

const SYNCHRONOUS: Record<Durability, string> = { full: "FULL", normal: "NORMAL" };

/**
 * Opens (creating it if missing) `file` with the platform's pragmas; ":memory:" for a store that is
 * not kept. Throws PLT_STORAGE_CORRUPT for a damaged file or one that is not SQLite. `log` hears
 * of a file too big to check (default: a logger of its own on stderr).
 */
export function openStore(file: string, options: StoreOptions, log?: Pick<Logger, "warn">): Database {
  const db = new Database(file, { create: true, strict: true });
  try {
    // busy_timeout first: switching to WAL takes a lock that another connection may hold.
    db.exec(`PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = ${SYNCHRONOUS[options.durability]};`);
    if (options.autoCheckpointPages !== undefined) db.exec(`PRAGMA wal_autocheckpoint = ${Math.trunc(options.autoCheckpointPages)}`);
    if (options.quickCheckMaxBytes && file !== ":memory:") quickCheck(db, file, options.quickCheckMaxBytes, log);
  } catch (err) {
    db.close();
    throw damageOf(file, err) ?? err;
  }
  return db;
}

/** PLT_STORAGE_CORRUPT for a SQLite error that says `file` is damaged or not SQLite; null for any other error. */
export function damageOf(file: string, err: unknown): PlinthError | null {
  if (err instanceof PlinthError && err.code === "PLT_STORAGE_CORRUPT") return err;
  return isDamage(err) ? storageCorrupt(file, (err as Error).message, err) : null;
}

/** The store options `data` configures (the checkpointer thread runs when data.checkpointMs > 0). */
export const storeOptions = (data: Config["data"]): StoreOptions => ({
  durability: data.durability,
  autoCheckpointPages: autoCheckpointPages(data.checkpointMs),
  quickCheckMaxBytes: data.quickCheckMaxBytes,
});

function quickCheck(db: Database, file: string, maxBytes: number, log: Pick<Logger, "warn"> | undefined): void {
  const bytes = fileBytes(file);
  if (bytes === 0) return; // new
  if (bytes > maxBytes) {
    (log ?? createLogger({ name: "storage" })).warn("store not checked at start: larger than data.quickCheckMaxBytes; run plinth check", { file, bytes, quickCheckMaxBytes: maxBytes });
    return;
  }
  readAhead(file);
  const found = problems(db, "quick_check", 1);
  if (found.length > 0) throw storageCorrupt(file, `quick_check: ${found[0]}`);
}

/**
 * Reads the file once from start to end before it is checked: the check visits pages in b-tree
 * order, one small read each, which on a cold cache costs several times a sequential read of the
 * whole file (on 1 GB: 13 s against 1.6 s plus the check's 2 s on a warm cache).
 */
function readAhead(file: string): void {
  const buffer = Buffer.allocUnsafe(1 << 20);
  const fd = openSync(file, "r");
  try {
    while (readSync(fd, buffer, 0, buffer.length, null) > 0);
  } finally {
    closeSync(fd);
  }
}
