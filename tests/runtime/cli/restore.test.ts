/** `plinth restore <folder>` (runtime/cli/restore.ts): its lines, the stores it left alone, --json. */
import { describe, expect, test } from "bun:test";
import { copyFileSync, statSync } from "node:fs";
import { bytes } from "../../../runtime/cli/backup";
import { restoreCommand } from "../../../runtime/cli/restore";
import { backup } from "../../../runtime/storage/backup";
import { tempDir } from "../../helpers/tmp";
import { captured, invoke } from "./invoke";
import { rowsOf, store } from "./stores";

describe("restoreCommand", () => {
  test("one line per file put back with its size, the stores left as they were, then the count and the folder", async () => {
    using dir = tempDir("plinth-restore");
    const data = dir.join("data");
    store(data, "orders", 5);
    store(data, "auth");
    backup(data, dir.join("copy"));
    store(data, "billing"); // made after the backup
    store(dir.join("later"), "orders", 9);
    copyFileSync(dir.join("later/orders.sqlite"), `${data}/orders.sqlite`);
    expect(rowsOf(`${data}/orders.sqlite`)).toBe(9);

    const out = await captured(() => {
      process.exitCode = restoreCommand({ folder: dir.join("copy"), dataDir: data, json: false });
    });
    expect(out.code).toBe(0);
    expect(out.stderr).toBe("");
    const lines = out.stdout.split("\n");
    expect(lines.slice(0, 2).sort()).toEqual(["auth", "orders"].map((n) => `restored ${data}/${n}.sqlite (${bytes(statSync(`${data}/${n}.sqlite`).size)})`));
    expect(lines.slice(2)).toEqual([`left as they were (not in the backup): ${data}/billing.sqlite`, `restore complete: 2 files into ${data}`]);
    expect(rowsOf(`${data}/orders.sqlite`)).toBe(5);
  });

  test("nothing left aside: no such line; one file: the singular", async () => {
    using dir = tempDir("plinth-restore");
    store(dir.join("data"), "orders");
    backup(dir.join("data"), dir.join("copy"));
    const out = await captured(() => restoreCommand({ folder: dir.join("copy"), dataDir: dir.join("data"), json: false }));
    expect(out.stdout.split("\n")).toEqual([expect.stringMatching(/^restored .*orders\.sqlite \(\d+\.\d kB\)$/), `restore complete: 1 file into ${dir.join("data")}`]);
  });

  test("--json: the result as one JSON object", async () => {
    using dir = tempDir("plinth-restore");
    store(dir.join("data"), "orders");
    backup(dir.join("data"), dir.join("copy"));
    store(dir.join("data"), "extra");
    const out = await captured(() => restoreCommand({ folder: dir.join("copy"), dataDir: dir.join("data"), json: true }));
    const file = dir.join("data/orders.sqlite");
    expect(JSON.parse(out.stdout)).toEqual({ dataDir: dir.join("data"), files: [{ file, bytes: statSync(file).size }], kept: [dir.join("data/extra.sqlite")] });
  });

  test("through the command line: a folder that is no backup is exit 1 naming it", async () => {
    using dir = tempDir("plinth-restore");
    store(dir.join("data"), "orders");
    expect(await invoke(["restore", dir.join("nope"), "--data", dir.join("data")])).toEqual({ code: 1, stdout: "", stderr: `plinth: backup folder ${dir.join("nope")} does not exist` });
    const notBackup = await invoke(["restore", dir.join("data"), "--data", dir.join("data")]);
    expect(notBackup.code).toBe(1);
    expect(notBackup.stderr).toBe(`plinth: ${dir.join("data")} is not a complete backup (no readable plinth-backup.json; plinth backup writes it last)`);
  });
});
