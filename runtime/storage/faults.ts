/**
 * Storage faults: errors that say a store cannot take writes now (its disk is full, its file system
 * read-only, its device failing, its file corrupt or unopenable), told apart in one place from every
 * other error a handler or a store may raise. Classification runs on the error path only.
 *
 * - `storageFault(err)`: SQLite's result code (bun:sqlite's SQLiteError `.code`, e.g. "SQLITE_FULL",
 *   "SQLITE_IOERR_WRITE") or the OS error of a file write ("ENOSPC", "EROFS", "EIO") → the
 *   platform's code (PLT_STORAGE_FULL 507, PLT_STORAGE_UNAVAILABLE 503, both retryable) and a reason.
 * - `storageError(service, fault)`: what a client is told: one short line, no path, no stack.
 * - `StorageHealth`: one store's state for /health, reported on transitions only: degraded at its
 *   first storage fault, back to ok once a write commits again with no fault for QUIET_MS.
 */
import { statSync, utimesSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { PlinthError } from "../errors";

export type StorageReason = "disk full" | "read-only" | "I/O error" | "corrupt" | "cannot open";

export interface StorageFault {
  code: "PLT_STORAGE_FULL" | "PLT_STORAGE_UNAVAILABLE";
  reason: StorageReason;
  /** What SQLite or the OS said: its code ("SQLITE_FULL", "SQLITE_IOERR_WRITE", "ENOSPC")... */
  cause: string;
  /** ...and its message ("database or disk is full"). */
  detail: string;
}

/** A store's fault as /health shows it: since when (ISO 8601). */
export interface StorageState extends StorageFault {
  since: string;
}

/** When a client is told to try again (Retry-After): the fault is answered at once, retrying costs little. */
export const STORAGE_RETRY_MS = 1_000;

/** A store is back once a write commits and no storage fault follows for this long (no flapping on a nearly full disk). */
export const QUIET_MS = 1_000;

/** SQLite's primary result codes (the extended ones start with these and "_"), and the OS's, that are storage faults. */
const REASONS: Record<string, StorageReason> = {
  SQLITE_FULL: "disk full",
  SQLITE_READONLY: "read-only",
  SQLITE_IOERR: "I/O error",
  SQLITE_CORRUPT: "corrupt",
  SQLITE_NOTADB: "corrupt",
  SQLITE_CANTOPEN: "cannot open",
  ENOSPC: "disk full",
  EDQUOT: "disk full",
  EROFS: "read-only",
  EIO: "I/O error",
};

/** IOERR subcodes that are not the storage's fault. */
const NOT_STORAGE = new Set(["SQLITE_IOERR_NOMEM"]);

/**
 * The storage fault `err` is, or null for any other error (a constraint, SQLITE_BUSY, a handler's
 * own). `folder`: where the store lives; an I/O error there is told as "read-only" when the folder's
 * file system has turned read-only (SQLite reports a write refused with EROFS as SQLITE_IOERR_WRITE).
 */
export function storageFault(err: unknown, folder?: string): StorageFault | null {
  if (typeof err !== "object" || err === null) return null;
  const cause = (err as { code?: unknown }).code;
  if (typeof cause !== "string" || NOT_STORAGE.has(cause)) return null;
  let reason = REASONS[cause] ?? (cause.startsWith("SQLITE_") ? REASONS[primary(cause)] : undefined);
  if (!reason) return null;
  if (reason === "I/O error" && folder !== undefined && readOnly(folder)) reason = "read-only";
  const message = (err as { message?: unknown }).message;
  return {
    code: reason === "disk full" ? "PLT_STORAGE_FULL" : "PLT_STORAGE_UNAVAILABLE",
    reason,
    cause,
    detail: typeof message === "string" ? message : cause,
  };
}

/** "SQLITE_IOERR_WRITE" → "SQLITE_IOERR". */
function primary(code: string): string {
  const end = code.indexOf("_", "SQLITE_".length);
  return end < 0 ? code : code.slice(0, end);
}

/**
 * Whether the folder's file system refuses writes as read-only: setting the folder's times to what
 * they are is a write that changes nothing. (access(W_OK) is not enough: a file system the kernel
 * turned read-only after an error, ext4's errors=remount-ro, still passes it.)
 */
function readOnly(folder: string): boolean {
  try {
    const { atime, mtime } = statSync(folder);
    utimesSync(folder, atime, mtime);
    return false;
  } catch (err) {
    return (err as { code?: string }).code === "EROFS";
  }
}

/** What the caller of `service` gets for a storage fault: a short line naming the reason, never a path or a stack. */
export function storageError(service: string, fault: StorageFault): PlinthError {
  const message = fault.code === "PLT_STORAGE_FULL" ? `${service}: storage is full, try again later` : `${service}: storage unavailable (${fault.reason}), try again later`;
  return new PlinthError(fault.code, message, { data: { service, reason: fault.reason, retryInMs: STORAGE_RETRY_MS } });
}

/**
 * One store's health, as its writer sees it. `failed(err)` classifies an error and, for a storage
 * fault, marks the store degraded; `committed()` says a write of the store committed. Listeners hear
 * transitions only: degraded (or a new reason), and back to ok.
 */
export class StorageHealth {
  private state: StorageState | null = null;
  private lastFault = 0;
  private lastWrite = 0;
  private timer: Timer | null = null;
  private readonly listeners: Array<(state: StorageState | null, previous: StorageState | null) => void> = [];

  constructor(
    /** The store's folder, to tell a read-only file system from other I/O errors. */
    private readonly folder?: string,
    private readonly quietMs = QUIET_MS,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The current fault, or null: healthy. */
  get fault(): StorageState | null {
    return this.state;
  }

  /** Hears each transition; returns the way to stop. */
  listen(listener: (state: StorageState | null, previous: StorageState | null) => void): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  /** Takes on the state that the store's writer in another thread (the broker's) reported. */
  mirror(state: StorageState | null): void {
    const previous = this.state;
    if (previous === null && state === null) return;
    this.state = state;
    this.tell(previous);
  }

  /** The storage fault `err` is (null: another kind of error, nothing recorded). */
  failed(err: unknown): StorageFault | null {
    const fault = storageFault(err, this.folder);
    if (!fault) return null;
    this.lastFault = this.now();
    const previous = this.state;
    if (previous?.reason !== fault.reason) {
      this.state = { ...fault, since: previous?.since ?? new Date().toISOString() };
      this.tell(previous);
    }
    return fault;
  }

  /** A write committed: a degraded store is back once no fault has followed for quietMs. Free when healthy. */
  committed(): void {
    if (this.state === null) return;
    this.lastWrite = this.now();
    if (this.timer === null) this.recheck();
  }

  private readonly recheck = (): void => {
    this.timer = null;
    if (this.state === null || this.lastWrite <= this.lastFault) return;
    const left = this.lastFault + this.quietMs - this.now();
    if (left <= 0) return this.recover();
    this.timer = setTimeout(this.recheck, left);
    this.timer.unref?.();
  };

  private recover(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const previous = this.state;
    this.state = null;
    this.tell(previous);
  }

  private tell(previous: StorageState | null): void {
    for (const listener of this.listeners) listener(this.state, previous);
  }
}

/** Each store file's health in this process, by path: its writer reports to it, /health reads it. */
const stores = new Map<string, StorageHealth>();

/** The health of the store at `file` (created healthy on first use). */
export function storeHealth(file: string): StorageHealth {
  const key = resolve(file);
  let health = stores.get(key);
  if (!health) stores.set(key, (health = new StorageHealth(dirname(key))));
  return health;
}
