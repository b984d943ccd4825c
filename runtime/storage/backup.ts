/**
 * Backup and restore of a data folder's stores (every `*.sqlite`: the services'
 * files, auth's, the broker's).
 *
 * `backup` runs beside a running platform, from another process, without its
 * lock: each store is copied with `VACUUM INTO` from a read-only connection, a
 * consistent snapshot of that file as of the moment its copy starts (WAL lets
 * the copy read beside the writers; the files are copied one after the other,
 * so each has its own moment). Each copy is written under a temporary name
 * (`.partial`), synced, and renamed once all are written; the manifest
 * (`plinth-backup.json`) is written last: a backup without one is incomplete.
 *
 * `restore` puts a backup back into a stopped platform's data folder: it holds
 * the folder's lock throughout, checks every file of the backup first
 * (quick_check), then replaces each store (its old `-wal` and `-shm` removed
 * first: an old WAL beside a new file would be replayed into it) and removes
 * the service's outbox record (`<service>.log.json`), so its rewound log starts
 * a new generation.
 */
import { Database } from "bun:sqlite";
import { closeSync, copyFileSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { PlinthError } from "../errors";
import { checkFile, isDamage, storeFiles, storeName } from "./check";
import { logRecordFile } from "./generation";
import { DataFolderLock } from "./lock";

export const MANIFEST = "plinth-backup.json";
const PARTIAL = ".partial";
const RESTORING = ".restoring";

export interface Manifest {
  format: 1;
  /** When the backup started (ISO 8601). */
  started: string;
  /** The data folder it was taken from. */
  from: string;
  files: Array<{ name: string; bytes: number }>;
}

export interface CopiedFile {
  /** Where it was written (backup) or put back (restore). */
  file: string;
  bytes: number;
}

/** Writes a consistent copy of every store of `dataDir` into `folder` (created if missing). */
export function backup(dataDir: string, folder: string): { folder: string; files: CopiedFile[] } {
  const from = resolve(dataDir);
  const to = resolve(folder);
  if (!isFolder(from)) throw new Error(`data folder ${from} does not exist: name it with --data or in the config (data.dir)`);
  const sources = storeFiles(from);
  if (sources.length === 0) throw new Error(`data folder ${from} holds no .sqlite file: nothing to back up`);
  mkdirSync(to, { recursive: true });
  if (to === from) throw new Error(`backup folder ${to} is the data folder: choose another`);
  const taken = readdirSync(to)
    .filter((name) => name.endsWith(".sqlite") || name === MANIFEST)
    .sort();
  if (taken.length > 0) {
    const named = taken.length > 3 ? `${taken.slice(0, 3).join(", ")} and ${taken.length - 3} more` : taken.join(", ");
    throw new Error(`backup folder ${to} already holds ${named}: choose an empty or new folder`);
  }

  const started = new Date().toISOString();
  const written: string[] = [];
  try {
    for (const source of sources) {
      const partial = join(to, basename(source) + PARTIAL);
      rmSync(partial, { force: true }); // left by an interrupted backup: VACUUM INTO writes only into a new or empty file
      written.push(partial);
      copyStore(source, partial);
    }
    const files: CopiedFile[] = [];
    for (const partial of written) {
      const file = partial.slice(0, -PARTIAL.length);
      renameSync(partial, file);
      files.push({ file, bytes: statSync(file).size });
    }
    const manifest: Manifest = { format: 1, started, from, files: files.map((f) => ({ name: basename(f.file), bytes: f.bytes })) };
    writeDurably(join(to, MANIFEST), JSON.stringify(manifest, null, 2) + "\n");
    syncFolder(to);
    return { folder: to, files };
  } catch (err) {
    for (const partial of written) rmSync(partial, { force: true });
    throw err;
  }
}

/**
 * Puts the backup in `folder` back into `dataDir`: refused (PLT_DATA_LOCKED) while a platform
 * holds the folder, and (PLT_STORAGE_CORRUPT) if a file of the backup fails its quick_check.
 * Stores of `dataDir` that the backup does not hold are left as they are (`kept`).
 */
export function restore(folder: string, dataDir: string): { dataDir: string; files: CopiedFile[]; kept: string[] } {
  const from = resolve(folder);
  const to = resolve(dataDir);
  const manifest = readManifest(from);
  const lock = DataFolderLock.acquire(to);
  try {
    for (const { name, bytes } of manifest.files) {
      const file = join(from, name);
      if (!existsSync(file)) throw new Error(`backup ${from} is incomplete: ${name} is missing`);
      if (statSync(file).size !== bytes) throw new Error(`backup ${from} is incomplete: ${name} has ${statSync(file).size} bytes, the manifest says ${bytes}`);
      const check = checkFile(file, "quick_check", 1);
      if (!check.ok) throw new PlinthError("PLT_STORAGE_CORRUPT", `backup file ${file} is damaged (quick_check: ${check.problems[0]}): nothing was restored; use another backup`);
    }
    const files: CopiedFile[] = [];
    for (const { name } of manifest.files) {
      const target = join(to, name);
      const staged = target + RESTORING;
      copyFileSync(join(from, name), staged);
      syncFile(staged);
      // The old WAL first: beside the new file it would be replayed into it.
      rmSync(`${target}-wal`, { force: true });
      rmSync(`${target}-shm`, { force: true });
      renameSync(staged, target);
      rmSync(logRecordFile(to, storeName(name)), { force: true });
      files.push({ file: target, bytes: statSync(target).size });
    }
    syncFolder(to);
    const restored = new Set(manifest.files.map((f) => f.name));
    const kept = storeFiles(to).filter((file) => !restored.has(basename(file)));
    return { dataDir: to, files, kept };
  } finally {
    lock.release();
  }
}

/** The manifest of a complete backup; throws, saying why, for anything else. */
export function readManifest(folder: string): Manifest {
  if (!isFolder(folder)) throw new Error(`backup folder ${folder} does not exist`);
  let manifest: Manifest;
  try {
    manifest = JSON.parse(readFileSync(join(folder, MANIFEST), "utf8")) as Manifest;
  } catch {
    throw new Error(`${folder} is not a complete backup (no readable ${MANIFEST}; plinth backup writes it last)`);
  }
  const valid =
    manifest.format === 1 &&
    Array.isArray(manifest.files) &&
    manifest.files.every((f) => typeof f?.name === "string" && f.name.endsWith(".sqlite") && basename(f.name) === f.name && Number.isSafeInteger(f.bytes));
  if (!valid) throw new Error(`${join(folder, MANIFEST)} is not a manifest this version of plinth reads`);
  return manifest;
}

/** `VACUUM INTO` from a read-only connection, then synced (VACUUM INTO itself does not sync its output). */
function copyStore(source: string, target: string): void {
  let db: Database | undefined;
  try {
    db = new Database(source, { readonly: true, strict: true });
    db.exec("PRAGMA busy_timeout = 5000");
    db.query("VACUUM INTO ?").run(target);
  } catch (err) {
    if (isDamage(err)) throw new PlinthError("PLT_STORAGE_CORRUPT", `cannot back up ${source}: ${(err as Error).message} (plinth check names the damage)`, { cause: err });
    throw new Error(`cannot back up ${source}: ${(err as Error).message}`, { cause: err });
  } finally {
    db?.close();
  }
  syncFile(target);
}

function writeDurably(file: string, text: string): void {
  const temp = file + PARTIAL;
  writeFileSync(temp, text);
  syncFile(temp);
  renameSync(temp, file);
}

function syncFile(file: string): void {
  const fd = openSync(file, "r+");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Makes the folder's renames durable. */
function syncFolder(folder: string): void {
  const fd = openSync(folder, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
