import { afterEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { discoverPlugins } from "../../../runtime/loader/discover";

const dirs: string[] = [];

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "plinth-discover-"));
  dirs.push(dir);
  return dir;
}

/** Creates each file (and its folders) under `root`. */
function touch(root: string, ...files: string[]): void {
  for (const file of files) {
    const path = join(root, file);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, "export default {};\n");
  }
}

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("discoverPlugins", () => {
  test("a missing folder gives []", () => {
    expect(discoverPlugins(join(tmpdir(), "plinth-does-not-exist-" + Bun.randomUUIDv7()))).toEqual([]);
  });

  test("an empty folder gives []", () => {
    expect(discoverPlugins(tempDir())).toEqual([]);
  });

  test("finds folder/index.ts, folder/index.js and folder/index.mjs", () => {
    const root = tempDir();
    touch(root, "orders/index.ts", "orders/helpers.ts", "inventory/index.js", "payments/index.mjs");
    expect(discoverPlugins(root)).toEqual([join(root, "inventory/index.js"), join(root, "orders/index.ts"), join(root, "payments/index.mjs")]);
  });

  test("prefers index.ts over index.js in the same folder", () => {
    const root = tempDir();
    touch(root, "orders/index.js", "orders/index.ts");
    expect(discoverPlugins(root)).toEqual([join(root, "orders/index.ts")]);
  });

  test("finds single-file plugins", () => {
    const root = tempDir();
    touch(root, "a.ts", "b.js", "c.mjs");
    expect(discoverPlugins(root)).toEqual([join(root, "a.ts"), join(root, "b.js"), join(root, "c.mjs")]);
  });

  test("skips private, hidden, test and declaration files, index-less folders and non-code files", () => {
    const root = tempDir();
    touch(
      root,
      "_private.ts",
      ".hidden.ts",
      ".hidden/index.ts",
      "_drafts/index.ts",
      "x.test.ts",
      "x.spec.js",
      "y.d.ts",
      "notes/readme.md",
      "lib/util.ts",
      "README.md",
      "data.json",
      "style.css",
      "kept.ts",
    );
    expect(discoverPlugins(root)).toEqual([join(root, "kept.ts")]);
  });

  test("the result is sorted by entry name", () => {
    const root = tempDir();
    touch(root, "zeta.ts", "alpha/index.ts", "mid.js", "beta.ts", "gamma/index.js");
    const found = discoverPlugins(root);
    expect(found).toEqual([
      join(root, "alpha/index.ts"),
      join(root, "beta.ts"),
      join(root, "gamma/index.js"),
      join(root, "mid.js"),
      join(root, "zeta.ts"),
    ]);
  });

  test("returns absolute paths under the given folder", () => {
    const root = tempDir();
    touch(root, "orders/index.ts");
    const [first] = discoverPlugins(root);
    expect(first).toBeDefined();
    expect(first!.startsWith(root + "/")).toBe(true);
  });
});
