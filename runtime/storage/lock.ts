/**
 * One owner per data folder. `plinth run` (and `plinth restore`) hold an
 * exclusive OS lock on `<data>/plinth.lock` from before any SQLite file is
 * opened until exit, so a second process on the same folder is refused
 * instead of opening every service's file beside the first one.
 *
 * The lock is SQLite's own: the lock file is a small SQLite database held in
 * `locking_mode=EXCLUSIVE` with a write committed, i.e. POSIX advisory locks
 * (fcntl) that the OS drops when the process dies, `kill -9` included, and
 * that SQLite also honours between connections of one process. The holder's
 * PID is written beside it (`plinth.pid`) for the refusal message.
 */
import { Database } from "bun:sqlite";
import { accessSync, constants, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { PlinthError } from "../errors";

export const LOCK_FILE = "plinth.lock";
export const PID_FILE = "plinth.pid";

export class DataFolderLock {
  private constructor(
    readonly dir: string,
    private db: Database | null,
  ) {}

  /**
   * Creates the folder if missing and takes its lock. Throws PLT_DATA_FOLDER when the folder cannot
   * be created or written, PLT_DATA_LOCKED when another process (or another platform in this one) holds it.
   */
  static acquire(dir: string): DataFolderLock {
    const folder = resolve(dir);
    prepareFolder(folder);
    let db: Database | undefined;
    try {
      db = new Database(join(folder, LOCK_FILE), { create: true });
      db.exec("PRAGMA locking_mode = EXCLUSIVE; PRAGMA journal_mode = DELETE;");
      // The first write takes the EXCLUSIVE lock; in this locking mode it is kept after COMMIT.
      db.exec("BEGIN EXCLUSIVE; CREATE TABLE IF NOT EXISTS owner (pid INTEGER, since TEXT); DELETE FROM owner; COMMIT;");
      db.query("INSERT INTO owner (pid, since) VALUES (?, ?)").run(process.pid, new Date().toISOString());
    } catch (err) {
      db?.close();
      const code = (err as { code?: string }).code ?? "";
      if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) {
        const holder = holderPid(folder);
        throw new PlinthError("PLT_DATA_LOCKED", `data folder ${folder} is in use by another plinth process${holder ? ` (pid ${holder})` : ""}: stop it, or give this one another folder with --data`);
      }
      throw new PlinthError("PLT_DATA_FOLDER", `cannot lock data folder ${folder} (${describe(err)}): check it is a local, writable folder`, { cause: err });
    }
    try {
      writeFileSync(join(folder, PID_FILE), `${process.pid}\n`);
    } catch {} // only informs the refusal message of a second process
    return new DataFolderLock(folder, db);
  }

  /** Whether another process holds the folder's lock (for commands that must not run beside the platform). */
  static heldElsewhere(dir: string): boolean {
    try {
      DataFolderLock.acquire(dir).release();
      return false;
    } catch (err) {
      if (err instanceof PlinthError && err.code === "PLT_DATA_LOCKED") return true;
      throw err;
    }
  }

  release(): void {
    this.db?.close();
    this.db = null;
  }
}

function prepareFolder(folder: string): void {
  try {
    mkdirSync(folder, { recursive: true });
    accessSync(folder, constants.W_OK | constants.X_OK);
  } catch (err) {
    throw new PlinthError("PLT_DATA_FOLDER", `data folder ${folder} cannot be used (${describe(err)}): create it writable for this user, or choose another with --data`, { cause: err });
  }
}

function holderPid(folder: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(join(folder, PID_FILE), "utf8"), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** An fs or SQLite error in a few words: its code and message, no stack. */
function describe(err: unknown): string {
  const e = err as { code?: string; message?: string };
  const reasons: Record<string, string> = { EACCES: "permission denied", EPERM: "permission denied", EROFS: "read-only file system", ENOTDIR: "not a folder", ENOENT: "no such folder", ENOSPC: "no space left" };
  if (e.code && reasons[e.code]) return `${reasons[e.code]}, ${e.code}`;
  return e.code ? `${e.code}: ${e.message ?? ""}`.trim() : (e.message ?? String(err));
}
