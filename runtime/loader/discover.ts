/**
 * Finds plugin entry files in the plugins folder:
 * `<dir>/<name>/index.{ts,js,mjs}` and single files `<dir>/<name>.{ts,js,mjs}`.
 * Names starting with '.' or '_', tests and declaration files are skipped.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const EXTENSIONS = [".ts", ".js", ".mjs"];
const SKIP = /(^[._])|(\.(test|spec)\.[cm]?[jt]s$)|(\.d\.ts$)/;

/** The entry file for the folder entry `name` of `dir` (a plugin folder or file), or null if there is none. */
export function entryFile(dir: string, name: string): string | null {
  if (SKIP.test(name)) return null;
  const path = join(dir, name);
  if (!existsSync(path)) return null;
  const stat = statSync(path);
  if (stat.isDirectory()) return EXTENSIONS.map((ext) => join(path, `index${ext}`)).find((p) => existsSync(p)) ?? null;
  return stat.isFile() && EXTENSIONS.some((ext) => name.endsWith(ext)) ? path : null;
}

export function discoverPlugins(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .sort()
    .map((name) => entryFile(dir, name))
    .filter((path): path is string => path !== null);
}
