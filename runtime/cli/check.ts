/** `plinth check [service]`: PRAGMA integrity_check of every store of the data folder (or one), running platform or not. */
import { existsSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { checkFile, storeFiles, type FileCheck } from "../storage/check";

/** A complaint's length in the printed line at most (SQLite's can be long). */
const MAX_PROBLEM_CHARS = 200;

export interface CheckOptions {
  dataDir: string;
  /** One service's file only (`<service>.sqlite`; `_broker` for the broker's). */
  service?: string;
  json: boolean;
}

/** Prints one line per file and returns the exit code: 0 when every file is ok, 1 otherwise. */
export function check(options: CheckOptions): number {
  const dir = resolve(options.dataDir);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    console.error(`plinth: data folder ${dir} does not exist: name it with --data or in the config (data.dir)`);
    return 1;
  }
  let files: string[];
  if (options.service !== undefined) {
    const file = join(dir, `${options.service}.sqlite`);
    if (!/^[\w-]+$/.test(options.service) || !existsSync(file)) {
      console.error(`plinth: no store of ${JSON.stringify(options.service)} in ${dir} (no ${file})`);
      return 1;
    }
    files = [file];
  } else {
    files = storeFiles(dir);
  }
  const results = files.map((file) => checkFile(file, "integrity_check"));
  const ok = results.every((r) => r.ok);
  if (options.json) console.log(JSON.stringify({ ok, files: results }));
  else if (results.length === 0) console.log(`no .sqlite file in ${dir}: nothing to check`);
  else for (const r of results) console.log(line(r));
  return ok ? 0 : 1;
}

function line(result: FileCheck): string {
  if (result.ok) return `${result.file}: ok`;
  const problems = result.problems.map((p) => (p.length > MAX_PROBLEM_CHARS ? `${p.slice(0, MAX_PROBLEM_CHARS - 1)}…` : p));
  return `${result.file}: DAMAGED: ${problems.join("; ")}`;
}
