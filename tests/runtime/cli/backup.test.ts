/** `plinth backup <folder>` (runtime/cli/backup.ts): its lines and --json, and the byte sizes it prints. */
import { describe, expect, test } from "bun:test";
import { readFileSync, statSync } from "node:fs";
import { backupCommand, bytes } from "../../../runtime/cli/backup";
import { MANIFEST } from "../../../runtime/storage/backup";
import { tempDir } from "../../helpers/tmp";
import { captured, invoke } from "./invoke";
import { store } from "./stores";

describe("bytes", () => {
  test("under 1000: whole bytes", () => {
    expect([0, 1, 999].map(bytes)).toEqual(["0 B", "1 B", "999 B"]);
  });

  test("from 1000: one decimal in the largest unit of 1000 that fits", () => {
    expect(bytes(1000)).toBe("1.0 kB");
    expect(bytes(1049)).toBe("1.0 kB");
    expect(bytes(1050)).toBe("1.1 kB");
    expect(bytes(999_949)).toBe("999.9 kB");
    expect(bytes(1_000_000)).toBe("1.0 MB");
    expect(bytes(1_234_567)).toBe("1.2 MB");
    expect(bytes(4_096_000_000)).toBe("4.1 GB");
    expect(bytes(2e12)).toBe("2.0 TB");
  });

  test("past terabytes the unit stays TB", () => {
    expect(bytes(1e15)).toBe("1000.0 TB");
    expect(bytes(12_345e15)).toBe("12345000.0 TB");
  });
});

describe("backupCommand", () => {
  test("one line per file written with its size, then the count and the folder", async () => {
    using dir = tempDir("plinth-backup");
    store(dir.join("data"), "orders", 50);
    store(dir.join("data"), "auth");
    const to = dir.join("copy");
    const out = await captured(() => {
      process.exitCode = backupCommand({ dataDir: dir.join("data"), folder: to, json: false });
    });
    expect(out.code).toBe(0);
    expect(out.stderr).toBe("");
    const lines = out.stdout.split("\n");
    expect(lines.slice(0, -1).sort()).toEqual(["auth", "orders"].map((n) => `wrote ${to}/${n}.sqlite (${bytes(statSync(`${to}/${n}.sqlite`).size)})`));
    expect(lines.at(-1)).toBe(`backup complete: 2 files in ${to}`);
    expect(JSON.parse(readFileSync(`${to}/${MANIFEST}`, "utf8")).files).toHaveLength(2);
  });

  test("a single file is said in the singular", async () => {
    using dir = tempDir("plinth-backup");
    store(dir.join("data"), "orders");
    const out = await captured(() => backupCommand({ dataDir: dir.join("data"), folder: dir.join("copy"), json: false }));
    expect(out.stdout.split("\n").at(-1)).toBe(`backup complete: 1 file in ${dir.join("copy")}`);
  });

  test("--json: the result as one JSON object, and nothing else", async () => {
    using dir = tempDir("plinth-backup");
    store(dir.join("data"), "orders");
    const out = await captured(() => backupCommand({ dataDir: dir.join("data"), folder: dir.join("copy"), json: true }));
    const file = dir.join("copy/orders.sqlite");
    expect(JSON.parse(out.stdout)).toEqual({ folder: dir.join("copy"), files: [{ file, bytes: statSync(file).size }] });
  });

  test("through the command line: a data folder without stores is exit 1 with the reason on one line", async () => {
    using dir = tempDir("plinth-backup");
    const out = await invoke(["backup", dir.join("copy"), "--data", dir.path]);
    expect(out).toEqual({ code: 1, stdout: "", stderr: `plinth: data folder ${dir.path} holds no .sqlite file: nothing to back up` });
    const missing = await invoke(["backup", dir.join("copy"), "--data", dir.join("nope")]);
    expect(missing.stderr).toBe(`plinth: data folder ${dir.join("nope")} does not exist: name it with --data or in the config (data.dir)`);
  });
});
