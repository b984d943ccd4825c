/**
 * Integrity checks of the data folder's SQLite files: `PRAGMA quick_check` when
 * a store opens at start (open.ts) and on a backup before it is restored,
 * `PRAGMA integrity_check` for `plinth check`. Checks run on read-only
 * connections: WAL lets them read beside a running platform's writers.
 *
 * SQLite reports damage two ways: rows of complaints, or, when reading a page
 * fails outright, SQLITE_CORRUPT after the rows found so far (a file that is
 * not SQLite at all fails with SQLITE_NOTADB at its first read). Both become
 * the file's problems, SQLite's first complaint first.
 */
import { Database } from "bun:sqlite";
import { existsSync, readdirSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { PlinthError } from "../errors";

export type CheckKind = "quick_check" | "integrity_check";

export interface FileCheck {
  file: string;
  ok: boolean;
  /** At most the `max` asked for, SQLite's first complaint first; empty when ok. */
  problems: string[];
}

/** Problems a check reports at most (each file's line stays readable). */
export const MAX_PROBLEMS = 5;

/** The stores of a data folder: every `*.sqlite` (services, the broker's, auth), by name. */
export function storeFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith(".sqlite"))
    .map((entry) => join(dir, entry.name))
    .sort();
}

/** The service a store belongs to: its file name without `.sqlite` (`_broker` for the broker's). */
export const storeName = (file: string): string => basename(file, ".sqlite");

/** Whether a SQLite error says the file is damaged or is not SQLite at all. */
export function isDamage(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" && (code.startsWith("SQLITE_CORRUPT") || code.startsWith("SQLITE_NOTADB"));
}

/** PLT_STORAGE_CORRUPT for `file`, with SQLite's complaint and what the operator can do. */
export function storageCorrupt(file: string, complaint: string, cause?: unknown): PlinthError {
  const what = /not a database/i.test(complaint) ? "is not a SQLite database" : "is damaged";
  return new PlinthError(
    "PLT_STORAGE_CORRUPT",
    `${file} ${what} (${complaint}): restore it from a backup (plinth restore <backup folder>, with the platform stopped) or move it away to start with an empty one`,
    cause === undefined ? {} : { cause },
  );
}

/** Runs `PRAGMA <kind>` on an open connection and returns its problems (none: ok). */
export function problems(db: Database, kind: CheckKind, max = MAX_PROBLEMS): string[] {
  const found: string[] = [];
  const trees = treeNames(db);
  try {
    // Row by row: the rows before a SQLITE_CORRUPT are the precise complaints.
    for (const row of db.query(`PRAGMA ${kind}(${Math.max(1, Math.trunc(max))})`).iterate()) {
      const text = String(Object.values(row as Record<string, unknown>)[0]);
      if (text === "ok") break;
      found.push(...describe(text, trees));
      if (found.length >= max) break;
    }
  } catch (err) {
    if (!isDamage(err)) throw err;
    found.push((err as Error).message);
  }
  return found.slice(0, max);
}

/**
 * Checks one file on a read-only connection of its own. A file that cannot be read as SQLite
 * (not a database, damaged beyond opening) is a problem, not an exception.
 */
export function checkFile(file: string, kind: CheckKind = "integrity_check", max = MAX_PROBLEMS): FileCheck {
  if (!existsSync(file)) return { file, ok: false, problems: ["no such file"] };
  let db: Database | undefined;
  try {
    db = new Database(file, { readonly: true, strict: true });
    db.exec("PRAGMA busy_timeout = 5000");
    const found = problems(db, kind, max);
    return { file, ok: found.length === 0, problems: found };
  } catch (err) {
    if (!isDamage(err) && !isUnreadable(err)) throw err;
    return { file, ok: false, problems: [(err as Error).message] };
  } finally {
    db?.close();
  }
}

/** The bytes of `file` (0 when missing). */
export function fileBytes(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** Errors that mean the file could not be opened or read at all (permissions, not a regular file). */
function isUnreadable(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" && (code.startsWith("SQLITE_CANTOPEN") || code.startsWith("SQLITE_IOERR") || code.startsWith("SQLITE_PERM"));
}

/**
 * One row of a check's output as complaints: SQLite prefixes the first with "*** in database
 * main ***" and may put several on one row, one a line. "Tree N" (a b-tree's root page) is
 * given its table's or index's name when the schema can still be read.
 */
function describe(text: string, trees: Map<number, string>): string[] {
  return text
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !/^\*\*\* in database \w+ \*\*\*$/.test(line))
    .map((line) => line.replace(/^Tree (\d+) /, (whole, root: string) => (trees.has(Number(root)) ? `Tree ${root} (${trees.get(Number(root))}) ` : whole)));
}

function treeNames(db: Database): Map<number, string> {
  try {
    const rows = db.query("SELECT type, name, rootpage FROM sqlite_schema WHERE rootpage > 0").all() as Array<{ type: string; name: string; rootpage: number }>;
    return new Map(rows.map((r) => [r.rootpage, `${r.type} ${r.name}`]));
  } catch {
    return new Map(); // page 1 itself unreadable: the check says so
  }
}
