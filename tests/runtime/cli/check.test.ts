/** `plinth check [service]` (runtime/cli/check.ts): which files it checks, its lines, --json, and the exit code. */
import { describe, expect, test } from "bun:test";
import { rmSync, writeFileSync } from "node:fs";
import { check } from "../../../runtime/cli/check";
import { tempDir } from "../../helpers/tmp";
import { captured, invoke } from "./invoke";
import { store } from "./stores";

const run = (options: Parameters<typeof check>[0]) =>
  captured(() => {
    process.exitCode = check(options);
  });

describe("check", () => {
  test("a data folder that does not exist: exit 1 saying how to name it", async () => {
    using dir = tempDir("plinth-check");
    expect(await run({ dataDir: dir.join("nope"), json: false })).toEqual({
      code: 1,
      stdout: "",
      stderr: `plinth: data folder ${dir.join("nope")} does not exist: name it with --data or in the config (data.dir)`,
    });
    writeFileSync(dir.join("a-file"), "");
    expect((await run({ dataDir: dir.join("a-file"), json: false })).code).toBe(1);
  });

  test("an empty folder: nothing to check, exit 0", async () => {
    using dir = tempDir("plinth-check");
    expect(await run({ dataDir: dir.path, json: false })).toEqual({ code: 0, stdout: `no .sqlite file in ${dir.path}: nothing to check`, stderr: "" });
    expect(JSON.parse((await run({ dataDir: dir.path, json: true })).stdout)).toEqual({ ok: true, files: [] });
  });

  test("every store, one line each, exit 0 when all are ok", async () => {
    using dir = tempDir("plinth-check");
    const files = [store(dir.path, "orders"), store(dir.path, "_broker"), store(dir.path, "auth")].sort();
    writeFileSync(dir.join("orders.log.json"), "{}");
    const out = await run({ dataDir: dir.path, json: false });
    expect(out.code).toBe(0);
    expect(out.stdout.split("\n").sort()).toEqual(files.map((f) => `${f}: ok`));
  });

  test("a damaged file: DAMAGED with SQLite's complaint, exit 1, the others still checked", async () => {
    using dir = tempDir("plinth-check");
    const ok = store(dir.path, "orders");
    writeFileSync(dir.join("broken.sqlite"), "not the bytes of a SQLite database\n".repeat(200));
    const out = await run({ dataDir: dir.path, json: false });
    expect(out.code).toBe(1);
    expect(out.stdout.split("\n").sort()).toEqual([`${dir.join("broken.sqlite")}: DAMAGED: file is not a database`, `${ok}: ok`]);
    const json = JSON.parse((await run({ dataDir: dir.path, json: true })).stdout) as { ok: boolean; files: Array<{ file: string; ok: boolean; problems: string[] }> };
    expect(json.ok).toBe(false);
    expect(json.files.find((f) => f.file === ok)).toEqual({ file: ok, ok: true, problems: [] });
    expect(json.files.find((f) => f.file.endsWith("broken.sqlite"))).toMatchObject({ ok: false, problems: ["file is not a database"] });
  });

  test("one service: only its file", async () => {
    using dir = tempDir("plinth-check");
    const orders = store(dir.path, "orders");
    writeFileSync(dir.join("broken.sqlite"), "x".repeat(4096));
    expect(await run({ dataDir: dir.path, service: "orders", json: false })).toEqual({ code: 0, stdout: `${orders}: ok`, stderr: "" });
    expect((await run({ dataDir: dir.path, service: "broken", json: false })).code).toBe(1);
    const broker = store(dir.path, "_broker");
    expect((await run({ dataDir: dir.path, service: "_broker", json: false })).stdout).toBe(`${broker}: ok`);
  });

  test("a service without a store, or a name that is not one (a path): exit 1 naming it, nothing read outside the folder", async () => {
    using dir = tempDir("plinth-check");
    store(dir.path, "orders");
    store(dir.join(".."), `${dir.path.split("/").at(-1)}-outside`); // a real file the name below points at
    try {
      expect(await run({ dataDir: dir.path, service: "ghost", json: false })).toEqual({
        code: 1,
        stdout: "",
        stderr: `plinth: no store of "ghost" in ${dir.path} (no ${dir.join("ghost.sqlite")})`,
      });
      const escape = `../${dir.path.split("/").at(-1)}-outside`;
      const out = await run({ dataDir: dir.path, service: escape, json: false });
      expect(out.code).toBe(1);
      expect(out.stdout).toBe("");
      expect(out.stderr).toStartWith(`plinth: no store of ${JSON.stringify(escape)} in ${dir.path}`);
    } finally {
      rmSync(`${dir.path}-outside.sqlite`, { force: true });
    }
  });

  test("through the command line: --data and the service positional, --json", async () => {
    using dir = tempDir("plinth-check");
    const orders = store(dir.path, "orders");
    expect(await invoke(["check", "orders", "--data", dir.path])).toEqual({ code: 0, stdout: `${orders}: ok`, stderr: "" });
    const json = await invoke(["check", "--data", dir.path, "--json"]);
    expect(JSON.parse(json.stdout)).toEqual({ ok: true, files: [{ file: orders, ok: true, problems: [] }] });
    expect((await invoke(["check", "ghost", "--data", dir.path])).code).toBe(1);
  });
});
