/** Builds a plugins folder for a test from the example plugins, fixtures and inline sources. */
import { cpSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

export const REPO = resolve(import.meta.dir, "../..");
export const EXAMPLES = join(REPO, "plugins");
export const FIXTURES = join(REPO, "tests/fixtures/plugins");

export interface PluginSet {
  /** Example plugins from plugins/ to copy (folder names). */
  examples?: string[];
  /** Fixture plugins from tests/fixtures/plugins to copy (file names without .ts). */
  fixtures?: string[];
  /** Inline sources: relative path → file contents (e.g. broken plugins that must not type-check). */
  files?: Record<string, string>;
}

export function writePlugins(dir: string, set: PluginSet): string {
  mkdirSync(dir, { recursive: true });
  for (const name of set.examples ?? []) cpSync(join(EXAMPLES, name), join(dir, name), { recursive: true });
  for (const name of set.fixtures ?? []) cpSync(join(FIXTURES, `${name}.ts`), join(dir, `${name}.ts`));
  for (const [path, source] of Object.entries(set.files ?? {})) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), source);
  }
  return dir;
}
