/**
 * `plinth run` (runtime/cli/run.ts) up to the platform's start: its flags, and each one reaching the
 * config field it names. Every case here stops at the config (a wrong field no flag sets), so no
 * platform starts; a started one: tests/e2e/cli.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import yargs from "yargs";
import { run, runOptions } from "../../../runtime/cli/run";
import { rejection } from "../../helpers/errors";
import { tempDir } from "../../helpers/tmp";
import { invoke } from "./invoke";

describe("runOptions", () => {
  test("parses each flag to its type, with its aliases; --no-watch is watch false; nothing defaults", async () => {
    const parse = (argv: string[]) => runOptions(yargs(argv).strict()).parseAsync();
    expect(await parse(["-c", "a.ts", "-p", "8080", "--mqtt-port", "1884", "--plugins", "p", "--data", "d", "--log-level", "debug", "--no-watch"])).toMatchObject({
      config: "a.ts",
      port: 8080,
      "mqtt-port": 1884,
      plugins: "p",
      data: "d",
      "log-level": "debug",
      watch: false,
    });
    const none = await parse([]);
    for (const key of ["config", "port", "mqtt-port", "plugins", "data", "log-level", "watch"]) expect(none[key], key).toBeUndefined();
  });
});

describe("run", () => {
  test("a config file that does not exist: PLT_CONFIG_INVALID naming it as given", async () => {
    const err = await rejection(run({ config: "nope.config.ts" }));
    expect(err.code).toBe("PLT_CONFIG_INVALID");
    expect(err.message).toBe("nope.config.ts: config file not found");
  });

  test("flags override the file: each wrong value is reported under its field", async () => {
    using dir = tempDir("plinth-run");
    const config = dir.join("platform.config.ts");
    writeFileSync(config, `export default { broker: { colour: "red" }, gateway: { port: 3000 }, log: { level: "info" } };\n`);
    const err = await rejection(run({ config, port: -1, "mqtt-port": 1.5, "log-level": "loud" }));
    expect(err.message).toStartWith("platform.config.ts: invalid config\n");
    expect(err.message).toMatch(/gateway\.port: Expected integer to be greater or equal to 0, got -1/);
    expect(err.message).toMatch(/broker\.port: Expected integer, got 1\.5/);
    expect(err.message).toMatch(/log\.level: .*got "loud"/);
  });
});

describe("run through the command line: each flag reaches the config field it names", () => {
  /** A config file with one wrong field no flag sets: `run` always stops at the config, never starts. */
  function badConfig(dir: { join(...p: string[]): string }): string {
    const file = dir.join("bad.config.ts");
    writeFileSync(file, `export default { broker: { colour: "red" } };\n`);
    return file;
  }

  test("each flag's wrong value is reported under its config field, with the file's own error", async () => {
    using dir = tempDir("plinth-cli-run");
    const config = badConfig(dir);
    const cases: Array<[string[], RegExp]> = [
      [["--port", "eighty"], /gateway\.port: Expected integer/],
      [["-p", "eighty"], /gateway\.port: Expected integer/],
      [["--mqtt-port", "70000"], /broker\.port: Expected integer to be less or equal to 65535/],
      [["--log-level", "loud"], /log\.level: /],
    ];
    for (const [flags, field] of cases) {
      const out = await invoke(["run", "--config", config, ...flags]);
      expect(out.code, flags.join(" ")).toBe(1);
      expect(out.stderr).toStartWith("plinth: PLT_CONFIG_INVALID: bad.config.ts: invalid config\n");
      expect(out.stderr, flags.join(" ")).toMatch(field);
      expect(out.stderr).toMatch(/broker\.colour/);
    }
  });

  test("run is the default command: its flags work without it", async () => {
    using dir = tempDir("plinth-cli-run");
    const out = await invoke(["--config", badConfig(dir), "--port", "eighty"]);
    expect(out.code).toBe(1);
    expect(out.stderr).toMatch(/gateway\.port: Expected integer/);
  });

  test("a config file that does not exist is named as given", async () => {
    const out = await invoke(["run", "-c", "nope.config.ts"]);
    expect(out).toEqual({ code: 1, stdout: "", stderr: "plinth: PLT_CONFIG_INVALID: nope.config.ts: config file not found" });
  });
});

