/**
 * The command line's surface in process (runtime/cli/index.ts): yargs' parsing, the usage errors
 * (exit 2, the reason then the usage), --help and --version, and reportFatal (exit 1, one line,
 * never a stack). The compiled binary's side: tests/e2e/cli.test.ts.
 */
import { describe, expect, test } from "bun:test";
import pkg from "../../../package.json" with { type: "json" };
import { reportFatal } from "../../../runtime/cli/index";
import { PlinthError } from "../../../runtime/errors";
import { tempDir } from "../../helpers/tmp";
import { captured, invoke } from "./invoke";

describe("--version and --help", () => {
  test("--version and -v print the package version alone on stdout, exit 0", async () => {
    for (const flag of ["--version", "-v"]) {
      const { code, stdout, stderr } = await invoke([flag]);
      expect(code).toBe(0);
      expect(stdout.trim()).toBe(pkg.version);
      expect(stderr).toBe("");
    }
  });

  test("--help and -h list every command and run's flags on stdout, exit 0", async () => {
    for (const flag of ["--help", "-h"]) {
      const { code, stdout, stderr } = await invoke([flag]);
      expect(code).toBe(0);
      expect(stderr).toBe("");
      for (const word of ["plinth run", "new <name>", "events <command> <filter>", "status", "deadletters <service>", "keys <command> [id]", "check [service]", "backup <folder>", "restore <folder>"]) {
        expect(stdout).toContain(word);
      }
      for (const flag of ["--config", "--port", "--mqtt-port", "--plugins", "--data", "--log-level", "--watch"]) expect(stdout).toContain(flag);
    }
  });

  test("a command's --help names its own options and defaults", async () => {
    const { code, stdout } = await invoke(["status", "--help"]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/--url\s+Gateway URL\s+\[string\] \[default: "http:\/\/127\.0\.0\.1:3000"\]/);
    expect(stdout).toMatch(/--key\s+API key \(default: \$PLINTH_API_KEY\)/);
  });

  test("--help does not print the API key from the environment", async () => {
    const before = process.env.PLINTH_API_KEY;
    process.env.PLINTH_API_KEY = "plk_secret_from_env";
    try {
      for (const argv of [["status", "--help"], ["deadletters", "--help"], ["events", "--help"]]) {
        const { stdout, stderr } = await invoke(argv);
        expect(stdout + stderr).not.toContain("plk_secret_from_env");
      }
    } finally {
      if (before === undefined) delete process.env.PLINTH_API_KEY;
      else process.env.PLINTH_API_KEY = before;
    }
  });
});

describe("usage errors: exit 2, the reason first, then the usage, nothing on stdout", () => {
  const usage = async (argv: string[]) => {
    const out = await invoke(argv);
    expect(out.code, JSON.stringify(argv)).toBe(2);
    expect(out.stdout).toBe("");
    return out.stderr;
  };

  test("an unknown command or flag", async () => {
    expect(await usage(["frobnicate"])).toStartWith("Unknown argument: frobnicate\n");
    expect(await usage(["status", "--colour", "red"])).toStartWith("Unknown argument: colour\n");
    expect(await usage(["status", "--json"])).toStartWith("Unknown argument: json\n");
  });

  test("a missing positional", async () => {
    expect(await usage(["new"])).toStartWith("Not enough non-option arguments: got 0, need at least 1\n");
    expect(await usage(["events", "tail"])).toStartWith("Not enough non-option arguments: got 1, need at least 2\n");
    expect(await usage(["deadletters"])).toStartWith("Not enough non-option arguments: got 0, need at least 1\n");
    expect(await usage(["keys"])).toStartWith("Not enough non-option arguments: got 0, need at least 1\n");
  });

  test("a sub-command outside its choices", async () => {
    expect(await usage(["events", "head", "x"])).toStartWith('Invalid values:\n  Argument: command, Given: "head", Choices: "tail"\n');
    expect(await usage(["keys", "rotate"])).toStartWith('Invalid values:\n  Argument: command, Given: "rotate", Choices: "create", "list", "revoke"\n');
  });

  test("the usage shown is the command's own", async () => {
    const stderr = await usage(["keys", "rotate"]);
    expect(stderr).toContain("plinth keys <command> [id]");
    expect(stderr).toContain("--role");
    expect(stderr).not.toContain("--mqtt-port");
  });

  test("keys revoke without an id or name", async () => {
    const out = await invoke(["keys", "revoke", "--data", "/nonexistent-plinth-data"]);
    expect(out.code).toBe(2);
    expect(out.stderr.trim()).toBe("plinth: keys revoke needs the key's id or name");
  });

  test("an option given twice is refused, named by its long name, instead of reaching the command as a list", async () => {
    expect(await usage(["deadletters", "orders", "--url", "http://a", "--url", "http://b"])).toStartWith("--url given 2 times: give it once\n");
    expect(await usage(["status", "--key", "a", "--key", "b", "--key", "c"])).toStartWith("--key given 3 times: give it once\n");
    expect(await usage(["-c", "a.ts", "--config", "b.ts"])).toStartWith("--config given 2 times: give it once\n");
    expect(await usage(["run", "--mqtt-port", "1", "--mqtt-port", "2"])).toStartWith("--mqtt-port given 2 times: give it once\n");
    expect(await usage(["new", "x", "--plugins", "a", "--plugins", "b"])).toStartWith("--plugins given 2 times: give it once\n");
  });

  test("--role may be given more than once: the key gets every role", async () => {
    using dir = tempDir("plinth-cli-roles");
    const out = await invoke(["keys", "create", "--role", "ops", "--role", "audit", "--name", "two-roles", "--data", dir.path, "--json"]);
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toMatchObject({ name: "two-roles", roles: ["ops", "audit"] });
  });
});

describe("reportFatal: exit 1 and one line", () => {
  test("a PlinthError: its code and message", async () => {
    const out = await captured(() => reportFatal(new PlinthError("PLT_NOT_FOUND", "no such thing")));
    expect(out).toEqual({ code: 1, stdout: "", stderr: "plinth: PLT_NOT_FOUND: no such thing" });
  });

  test("another Error: its message, or its name when it has none; never its stack", async () => {
    const err = new TypeError("bad input");
    expect(await captured(() => reportFatal(err))).toEqual({ code: 1, stdout: "", stderr: "plinth: bad input" });
    expect((await captured(() => reportFatal(new RangeError()))).stderr).toBe("plinth: RangeError");
  });

  test("anything else thrown: as a string", async () => {
    expect((await captured(() => reportFatal("just a string"))).stderr).toBe("plinth: just a string");
    expect((await captured(() => reportFatal(42))).stderr).toBe("plinth: 42");
    expect((await captured(() => reportFatal(undefined))).stderr).toBe("plinth: undefined");
  });
});
