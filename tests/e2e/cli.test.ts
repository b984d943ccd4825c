/** The compiled binary's command line: help, version, scaffolding, config errors. */
import { describe, expect, test } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import pkg from "../../package.json" with { type: "json" };
import { runBinary, startBinary } from "../helpers/binary";
import { tempDir } from "../helpers/tmp";

describe("plinth CLI (compiled binary)", () => {
  test("--version prints the package version", async () => {
    using dir = tempDir();
    const { code, stdout } = await runBinary(dir.path, ["--version"]);
    expect(code).toBe(0);
    expect(stdout.trim()).toBe(pkg.version);
  });

  test("--help lists the commands and run's flags", async () => {
    using dir = tempDir();
    const { code, stdout } = await runBinary(dir.path, ["--help"]);
    expect(code).toBe(0);
    for (const word of ["run", "new <name>", "--port", "--mqtt-port", "--plugins", "--data", "--config"]) expect(stdout).toContain(word);
  });

  test("an unknown command fails with exit 2 and says why", async () => {
    using dir = tempDir();
    const { code, stderr } = await runBinary(dir.path, ["frobnicate"]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/Unknown argument: frobnicate/);
  });

  test("an unexpected error is one line with its message, never a stack trace", async () => {
    using dir = tempDir();
    const { code, stderr } = await runBinary(dir.path, ["events", "tail", "x", "--url", "ws://x:99999"]);
    expect(code).toBe(1);
    expect(stderr.trim()).toBe("plinth: Invalid URL: ws://x:99999/");
  });

  test("invalid config stops start-up naming the file and the field", async () => {
    using dir = tempDir();
    writeFileSync(dir.join("platform.config.ts"), `export default { gateway: { port: "eighty" }, broker: { colour: "red" } };\n`);
    const { code, stderr } = await runBinary(dir.path, ["run"]);
    expect(code).toBe(1);
    expect(stderr).toContain("PLT_CONFIG_INVALID");
    expect(stderr).toContain("platform.config.ts");
    expect(stderr).toMatch(/gateway\.port: Expected integer/);
    expect(stderr).toMatch(/broker\.colour/);
  });

  test("a config file that does not exist is named", async () => {
    using dir = tempDir();
    const { code, stderr } = await runBinary(dir.path, ["run", "--config", "nope.config.ts"]);
    expect(code).toBe(1);
    expect(stderr).toContain("nope.config.ts: config file not found");
  });

  test("a port in use stops start-up naming the config field", async () => {
    using dir = tempDir();
    const taken = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const broker = await runBinary(dir.path, ["run", "--port", "0", "--mqtt-port", String(taken.port)]);
      expect(broker.code).toBe(1);
      expect(broker.stderr).toContain(`PLT_LISTEN_FAILED: broker.port: cannot listen on 127.0.0.1:${taken.port}: address already in use`);
      const gateway = await runBinary(dir.path, ["run", "--port", String(taken.port), "--mqtt-port", "0"]);
      expect(gateway.code).toBe(1);
      expect(gateway.stderr).toContain(`PLT_LISTEN_FAILED: gateway.port: cannot listen on 127.0.0.1:${taken.port}`);
    } finally {
      taken.stop(true);
    }
  });

  test("new <name> scaffolds a plugin that serves at once", async () => {
    using dir = tempDir();
    const made = await runBinary(dir.path, ["new", "billing"]);
    expect(made.code).toBe(0);
    expect(existsSync(dir.join("plugins/billing/index.ts"))).toBe(true);
    expect((await runBinary(dir.path, ["new", "billing"])).stderr).toContain("already exists");
    expect((await runBinary(dir.path, ["new", "Bad_Name"])).code).toBe(1);

    await using app = await startBinary(dir.path);
    const created = await fetch(`${app.url}/api/billing`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ title: "first invoice" }),
    });
    expect(created.status).toBe(201);
    expect(await created.json()).toMatchObject({ id: 1, title: "first invoice" });
    expect(await (await fetch(`${app.url}/api/billing`)).json()).toMatchObject([{ id: 1, title: "first invoice" }]);
    expect(await app.stop()).toBe(0);
  });
});
