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
 */
import { Database } from "bun:sqlite";
import type { Config } from "../../config/schema";
import { autoCheckpointPages } from "./checkpointer";

export type Durability = "full" | "normal";

export interface StoreOptions {
  durability: Durability;
  /** `PRAGMA wal_autocheckpoint` (see checkpointer.ts); unset: SQLite's default, 1,000 pages. */
  autoCheckpointPages?: number;
}

const SYNCHRONOUS: Record<Durability, string> = { full: "FULL", normal: "NORMAL" };

/** Opens (creating it if missing) `file` with the platform's pragmas; ":memory:" for a store that is not kept. */
export function openStore(file: string, options: StoreOptions): Database {
  const db = new Database(file, { create: true, strict: true });
  try {
    // busy_timeout first: switching to WAL takes a lock that another connection may hold.
    db.exec(`PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = ${SYNCHRONOUS[options.durability]};`);
    if (options.autoCheckpointPages !== undefined) db.exec(`PRAGMA wal_autocheckpoint = ${Math.trunc(options.autoCheckpointPages)}`);
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

/** The store options `data` configures (the checkpointer thread runs when data.checkpointMs > 0). */
export const storeOptions = (data: Config["data"]): StoreOptions => ({ durability: data.durability, autoCheckpointPages: autoCheckpointPages(data.checkpointMs) });
