import { afterEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { DEFAULT_CONFIG_FILE, loadConfig, type LoadOptions } from "../../config/load";
import { PlinthError } from "../../runtime/errors";

const dirs: string[] = [];

/** A fresh temp folder (a new path each time, so Bun's module cache never serves a stale config). */
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "plinth-config-"));
  dirs.push(dir);
  return dir;
}

function write(dir: string, name: string, source: string): string {
  const path = join(dir, name);
  mkdirSync(resolve(path, ".."), { recursive: true });
  writeFileSync(path, source);
  return path;
}

async function loadError(options: LoadOptions): Promise<PlinthError> {
  const caught = await loadConfig(options).then(
    () => null,
    (e: unknown) => e,
  );
  expect(caught).toBeInstanceOf(PlinthError);
  const err = caught as PlinthError;
  expect(err.code).toBe("PLT_CONFIG_INVALID");
  return err;
}

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("loadConfig", () => {
  test("the default file name is platform.config.ts", () => {
    expect(DEFAULT_CONFIG_FILE).toBe("platform.config.ts");
  });

  test("no file: every default, paths resolved absolute against cwd", async () => {
    const cwd = tempDir();
    const { config, file } = await loadConfig({ cwd });
    expect(file).toBeNull();
    expect(config.gateway).toEqual({
      host: "127.0.0.1",
      port: 3000,
      maxBodyBytes: 1024 * 1024,
      maxJsonDepth: 64,
      requestTimeoutMs: 30_000,
      fallbacks: {},
      rateLimit: { limit: 0, windowMs: 1_000 },
      rateLimits: {},
      rateLimitKeys: 10_000,
      cache: { maxEntries: 1_000, maxBytes: 16 * 1024 * 1024 },
      cors: { origins: [], credentials: false, maxAgeSeconds: 600 },
      openapi: true,
    });
    expect(config.broker).toMatchObject({ host: "127.0.0.1", port: 1883, websocketPath: "/mqtt" });
    // Secure by default: routes need credentials, MQTT clients too, and no JWT key is trusted.
    expect(config.auth.defaultPolicy).toBe("authenticated");
    expect(config.auth.mqtt.anonymous).toBe(false);
    expect(config.auth.jwt.secret).toBeUndefined();
    expect(config.plugins).toEqual({ dir: join(cwd, "plugins"), watch: true, config: {} });
    expect(config.data).toEqual({ dir: join(cwd, "data"), checkpointMs: 100, durability: "full", quickCheckMaxBytes: 256 * 1024 * 1024 });
    expect(config.calls).toEqual({ timeoutMs: 5_000, retries: 2, retryDelayMs: 50 });
    expect(config.bulkhead).toEqual({ maxConcurrent: 256, maxQueue: 10_000, adaptive: true, minConcurrent: 4, maxQueueMs: 1_000 });
    expect(config.breaker).toEqual({
      failureThreshold: 5,
      resetTimeoutMs: 10_000,
      halfOpenMaxCalls: 1,
      windowMs: 10_000,
      buckets: 10,
      minimumCalls: 20,
      failureRate: 0.5,
      slowCallMs: 5_000,
      slowCallRate: 1,
      services: {},
      actions: {},
    });
    expect(config.workers).toEqual({ restartDelayMs: 100, maxRestarts: 5, startTimeoutMs: 10_000, heartbeatMs: 1_000, heartbeatTimeoutMs: 5_000, maxHeapBytes: 512 * 1024 * 1024, groupCommitMs: 0.2 });
    expect(config.log).toEqual({ level: "info", format: "pretty" });
    expect(config.shutdown).toEqual({ graceMs: 10_000 });
  });

  test("picks up platform.config.ts in cwd and fills the rest with defaults", async () => {
    const cwd = tempDir();
    const path = write(cwd, "platform.config.ts", "export default { gateway: { port: 4000 } }\n");
    const { config, file } = await loadConfig({ cwd });
    expect(file).toBe(path);
    expect(config.gateway.port).toBe(4000);
    expect(config.gateway.host).toBe("127.0.0.1");
    expect(config.broker.port).toBe(1883);
  });

  test("overrides beat the file, field by field", async () => {
    const cwd = tempDir();
    write(cwd, "platform.config.ts", "export default { gateway: { port: 4000, host: '0.0.0.0' }, broker: { port: 1900 } }\n");
    const { config } = await loadConfig({ cwd, overrides: { gateway: { port: 5000 } } });
    expect(config.gateway.port).toBe(5000);
    expect(config.gateway.host).toBe("0.0.0.0"); // merged, not replaced
    expect(config.broker.port).toBe(1900);
  });

  test("an explicit file (relative to cwd) is used instead of platform.config.ts", async () => {
    const cwd = tempDir();
    write(cwd, "platform.config.ts", "export default { gateway: { port: 4000 } }\n");
    const path = write(cwd, "conf/other.ts", "export default { gateway: { port: 4100 } }\n");
    const { config, file } = await loadConfig({ cwd, file: "conf/other.ts" });
    expect(file).toBe(path);
    expect(config.gateway.port).toBe(4100);
  });

  test("file paths resolve against the file's folder, override paths against cwd", async () => {
    const cwd = tempDir();
    write(cwd, "conf/platform.ts", "export default { plugins: { dir: './my-plugins' }, data: { dir: './my-data' } }\n");
    const { config } = await loadConfig({ cwd, file: "conf/platform.ts", overrides: { data: { dir: "./cli-data" } } });
    expect(config.plugins.dir).toBe(join(cwd, "conf", "my-plugins"));
    expect(config.data.dir).toBe(join(cwd, "cli-data"));
  });

  test("default paths resolve against the config file's folder", async () => {
    const cwd = tempDir();
    write(cwd, "conf/platform.ts", "export default {}\n");
    const { config } = await loadConfig({ cwd, file: "conf/platform.ts" });
    expect(config.plugins.dir).toBe(join(cwd, "conf", "plugins"));
    expect(config.data.dir).toBe(join(cwd, "conf", "data"));
  });

  test("absolute paths are kept as they are", async () => {
    const cwd = tempDir();
    const elsewhere = tempDir();
    const { config } = await loadConfig({ cwd, overrides: { plugins: { dir: elsewhere } } });
    expect(config.plugins.dir).toBe(elsewhere);
  });

  test("an out-of-range value is PLT_CONFIG_INVALID naming the file and the field", async () => {
    const cwd = tempDir();
    write(cwd, "platform.config.ts", "export default { gateway: { port: 70000 } }\n");
    const err = await loadError({ cwd });
    expect(err.message).toContain("platform.config.ts");
    expect(err.message).toContain("gateway.port");
    expect(err.message).toContain("70000");
    expect(err.data).toEqual([expect.objectContaining({ field: "gateway.port" })]);
  });

  test("a value of the wrong type is PLT_CONFIG_INVALID naming the file and the field", async () => {
    const cwd = tempDir();
    write(cwd, "platform.config.ts", "export default { gateway: { port: 'abc' } }\n");
    const err = await loadError({ cwd });
    expect(err.message).toContain("platform.config.ts");
    expect(err.message).toContain("gateway.port");
    expect(err.message).toContain('"abc"');
  });

  test("a cyclic, deeply nested or non-JSON value is PLT_CONFIG_INVALID naming the field, not a stack overflow", async () => {
    const cwd = tempDir();
    write(cwd, "platform.config.ts", "const o = {}; o.self = o;\nexport default { gateway: { fallbacks: { 'GET /api/x': { body: o } } } }\n");
    const cyclic = await loadError({ cwd });
    expect(cyclic.message).toContain("platform.config.ts");
    expect(cyclic.message).toContain('gateway.fallbacks["GET /api/x"].body.self');
    expect(cyclic.message).toContain("nested deeper than 32 levels");

    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect((await loadError({ cwd: tempDir(), overrides: { log: { level: deep as never } } })).message).toContain("log.level");
    const fn = await loadError({ cwd: tempDir(), overrides: { gateway: { port: (() => 1) as never } } });
    expect(fn.message).toContain("gateway.port: a function is not a config value");
    const big = await loadError({ cwd: tempDir(), overrides: { gateway: { port: 10n as never } } });
    expect(big.message).toContain("gateway.port: a bigint is not a config value");
  });

  test("an invalid override without a file is reported against the defaults", async () => {
    const cwd = tempDir();
    const err = await loadError({ cwd, overrides: { broker: { port: -1 } } });
    expect(err.message).toContain("broker.port");
    expect(err.message).toContain("defaults");
  });

  test("an invalid enum value names the field", async () => {
    const cwd = tempDir();
    write(cwd, "platform.config.ts", "export default { log: { level: 'verbose' } }\n");
    const err = await loadError({ cwd });
    expect(err.message).toContain("log.level");
  });

  test("a fallback for something that is not a gateway route is rejected by name", async () => {
    const cwd = tempDir();
    write(cwd, "platform.config.ts", "export default { gateway: { fallbacks: { orders: { body: [] } } } }\n");
    const err = await loadError({ cwd });
    expect(err.message).toContain("gateway.fallbacks.orders");
  });

  test("breaker overrides hold only what they name (no defaults filled in)", async () => {
    const cwd = tempDir();
    write(cwd, "platform.config.ts", "export default { breaker: { services: { orders: { failureRate: 0.2 } } } }\n");
    const { config } = await loadConfig({ cwd });
    expect(config.breaker.services).toEqual({ orders: { failureRate: 0.2 } });
    write(cwd, "bad.config.ts", "export default { breaker: { actions: { 'a.b': { failureRate: 3 } } } }\n");
    expect((await loadError({ cwd, file: "bad.config.ts" })).message).toContain(`breaker.actions["a.b"].failureRate`);
  });

  test("an unknown field is rejected by name", async () => {
    const cwd = tempDir();
    write(cwd, "platform.config.ts", "export default { gateway: { prot: 4000 } }\n");
    const err = await loadError({ cwd });
    expect(err.message).toContain("platform.config.ts");
    expect(err.message).toContain("gateway.prot");
  });

  test("an unknown top-level section is rejected by name", async () => {
    const cwd = tempDir();
    write(cwd, "platform.config.ts", "export default { gatewya: { port: 4000 } }\n");
    const err = await loadError({ cwd });
    expect(err.message).toContain("gatewya");
  });

  test("an explicit file that does not exist is PLT_CONFIG_INVALID naming it", async () => {
    const cwd = tempDir();
    const err = await loadError({ cwd, file: "missing.config.ts" });
    expect(err.message).toContain("missing.config.ts");
    expect(err.message).toContain("not found");
  });

  test("a file that throws at import is PLT_CONFIG_INVALID with 'cannot load'", async () => {
    const cwd = tempDir();
    write(cwd, "platform.config.ts", "throw new Error('kaboom');\nexport default {};\n");
    const err = await loadError({ cwd });
    expect(err.message).toContain("platform.config.ts");
    expect(err.message).toContain("cannot load");
    expect(err.message).toContain("kaboom");
  });

  test("a file without a default export is rejected", async () => {
    const cwd = tempDir();
    write(cwd, "platform.config.ts", "export const gateway = { port: 4000 };\n");
    const err = await loadError({ cwd });
    expect(err.message).toContain("platform.config.ts");
    expect(err.message).toContain("export default");
  });

  test("a default export that is not an object is rejected", async () => {
    const cwd = tempDir();
    write(cwd, "platform.config.ts", "export default [1, 2, 3];\n");
    const err = await loadError({ cwd });
    expect(err.message).toContain("export default");
  });

  test("the result is deep-frozen", async () => {
    const cwd = tempDir();
    write(cwd, "platform.config.ts", "export default { plugins: { config: { orders: { limit: 3 } } } }\n");
    const { config } = await loadConfig({ cwd });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.gateway)).toBe(true);
    expect(Object.isFrozen(config.plugins.config)).toBe(true);
    expect(Object.isFrozen(config.plugins.config.orders)).toBe(true);
    expect(() => {
      (config.gateway as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(config.gateway.port).toBe(3000);
  });

  test("the file's own objects are not mutated or frozen", async () => {
    const cwd = tempDir();
    const path = write(cwd, "platform.config.ts", "export default { gateway: { port: 4000 } }\n");
    await loadConfig({ cwd });
    const mod = (await import(path)) as { default: { gateway: Record<string, unknown> } };
    expect(Object.isFrozen(mod.default.gateway)).toBe(false);
    expect(mod.default.gateway).toEqual({ port: 4000 });
  });
});
