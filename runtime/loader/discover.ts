/**
 * Finds plugin entry files in the plugins folder:
 * `<dir>/<name>/index.{ts,js,mjs}` and single files `<dir>/<name>.{ts,js,mjs}`.
 * Names starting with '.' or '_', tests and declaration files are skipped.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const EXTENSIONS = [".ts", ".js", ".mjs"];
const SKIP = /(^[._])|(\.(test|spec)\.[cm]?[jt]s$)|(\.d\.ts$)/;

export function discoverPlugins(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const found: string[] = [];
  for (const entry of readdirSync(dir).sort()) {
    if (SKIP.test(entry)) continue;
    const path = join(dir, entry);
    const stat = statSync(path);
    if (stat.isDirectory()) {
      const index = EXTENSIONS.map((ext) => join(path, `index${ext}`)).find((p) => existsSync(p));
      if (index) found.push(index);
    } else if (stat.isFile() && EXTENSIONS.some((ext) => entry.endsWith(ext))) {
      found.push(path);
    }
  }
  return found;
}
