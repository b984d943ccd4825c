/**
 * Plugin loading and supervision: broken plugins are reported with file and
 * reason while the rest serve; a crashed worker is restarted; a crash loop
 * marks the service failed without touching the others.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { boot, NO_BREAKER, type Booted } from "../helpers/boot";
import { eventually } from "../helpers/mqtt";

let p: Booted | undefined;
afterEach(async () => {
  await p?.stop();
  p = undefined;
});

const good = `import { definePlugin } from "plinth";
export default definePlugin({ name: "good", version: "1.0.0", routes: { "GET /": () => ({ good: true }) } });
`;

type Health = {
  status: string;
  services: Record<string, { state: string }>;
  failed: Array<{ origin: string; error: { code: string; message: string } }>;
};
const health = async () => (await (await p!.req("/health")).json()) as Health;

describe("loading", () => {
  test("broken plugins are reported with file and reason; the good one serves", async () => {
    p = await boot({
      files: {
        "good.ts": good,
        "syntax.ts": `import { definePlugin } from "plinth";\nexport default definePlugin({ name: "syntax", version: "1.0.0", routes: { "GET /": () => ( } });\n`,
        "throws/index.ts": `throw new Error("cannot start: missing API key");\n`,
        "invalid.js": `export default { name: "Bad Name", version: "x" };\n`,
        "migration.ts": `export default { name: "migration", version: "1.0.0", migrations: ["CREATE TABLE t (", "x"] };\n`,
        "zz-dup.ts": good, // same service name as good.ts; files load in name order, so this one is the duplicate
        "notes.txt": "not a plugin",
      },
    });
    const res = await p.req("/api/good");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ good: true });

    const h = await health();
    expect(h.status).toBe("degraded");
    expect(h.services.good?.state).toBe("ready");
    const byFile = Object.fromEntries(h.failed.map((f) => [f.origin.split("/").slice(-2).join("/"), f.error]));
    expect(Object.keys(byFile).sort()).toEqual(["plugins/zz-dup.ts", "plugins/invalid.js", "plugins/migration.ts", "plugins/syntax.ts", "throws/index.ts"].sort());
    expect(byFile["plugins/syntax.ts"]?.code).toBe("PLT_PLUGIN_LOAD");
    expect(byFile["throws/index.ts"]?.message).toContain("missing API key");
    expect(byFile["plugins/invalid.js"]?.code).toBe("PLT_PLUGIN_INVALID");
    expect(byFile["plugins/invalid.js"]?.message).toMatch(/name: .*"Bad Name"/);
    expect(byFile["plugins/invalid.js"]?.message).toMatch(/version/);
    expect(byFile["plugins/migration.ts"]?.code).toBe("PLT_MIGRATION_FAILED");
    expect(byFile["plugins/migration.ts"]?.message).toContain("migration 1");
    expect(byFile["plugins/zz-dup.ts"]?.code).toBe("PLT_PLUGIN_DUPLICATE");
    expect(byFile["plugins/zz-dup.ts"]?.message).toContain("good.ts");
  });

  test("a duplicate never opens or migrates the database of the service it collides with", async () => {
    const def = (migration: string) => `export default { name: "twin", version: "1.0.0", migrations: [${JSON.stringify(migration)}],
      routes: { "GET /": (ctx) => ctx.db.query("SELECT name FROM sqlite_master WHERE name IN ('mine', 'evil')").all() } };`;
    p = await boot({ files: { "a-twin.ts": def("CREATE TABLE mine (x)"), "b-twin.ts": def("CREATE TABLE evil (x)") } });
    expect(await (await p.req("/api/twin")).json()).toEqual([{ name: "mine" }]);
    expect((await health()).failed.map((f) => [f.origin.split("/").pop(), f.error.code])).toEqual([["b-twin.ts", "PLT_PLUGIN_DUPLICATE"]]);
  });

  test("migrations run once each across restarts of the platform", async () => {
    const plugin = (n: number) => `import { definePlugin } from "plinth";
export default definePlugin({ name: "counter", version: "1.0.${n}",
  migrations: ${JSON.stringify(["CREATE TABLE c (n INTEGER)", "INSERT INTO c VALUES (1)", "INSERT INTO c VALUES (2)"].slice(0, n))},
  routes: { "GET /": (ctx) => ctx.db.query("SELECT COUNT(*) AS rows FROM c").get() } });`;
    p = await boot({ files: { "counter.ts": plugin(2) } });
    expect(await (await p.req("/api/counter")).json()).toEqual({ rows: 1 });
    const dataDir = p.dataDir;
    await p.platform.stop();
    // same data folder, one more migration
    const { loadConfig } = await import("../../config/load");
    const { startPlatform } = await import("../../runtime/platform");
    const { createLogger } = await import("../../runtime/log");
    const { writePlugins } = await import("../helpers/plugins");
    const { tempDir } = await import("../helpers/tmp");
    using dir = tempDir();
    const { config } = await loadConfig({
      overrides: {
        gateway: { port: 0 },
        broker: { port: 0 },
        plugins: { dir: writePlugins(dir.join("plugins"), { files: { "counter.ts": plugin(3) } }) },
        data: { dir: dataDir },
        auth: { defaultPolicy: "public" },
      },
    });
    const second = await startPlatform(config, createLogger({ level: "silent" }));
    try {
      expect(await (await fetch(`${second.gateway.url}/api/counter`)).json()).toEqual({ rows: 2 });
    } finally {
      await second.stop();
    }
  });

  test("each plugin sees only its own config", async () => {
    const show = (name: string) =>
      `export default { name: "${name}", version: "1.0.0", routes: { "GET /": (ctx) => ctx.config } };`;
    p = await boot({ files: { "a.ts": show("a"), "b.ts": show("b") } }, { plugins: { config: { a: { secret: "A" }, b: { secret: "B" } } } });
    expect(await (await p.req("/api/a")).json()).toEqual({ secret: "A" });
    expect(await (await p.req("/api/b")).json()).toEqual({ secret: "B" });
  });
});

describe("supervision", () => {
  test("a crashed worker fails its in-flight requests fast and is restarted", async () => {
    p = await boot({ fixtures: ["crashy"], files: { "good.ts": good } }, { workers: { restartDelayMs: 20 }, breaker: NO_BREAKER });
    const first = (await (await p.req("/api/crashy")).json()) as { startedAt: number };
    const hanging = p.req("/api/crashy/hang");
    expect((await p.req("/api/crashy/crash", { method: "POST" })).status).toBe(200);

    const inFlight = await hanging;
    expect(inFlight.status).toBe(503);
    expect(((await inFlight.json()) as { error: { code: string } }).error.code).toBe("PLT_SERVICE_UNAVAILABLE");

    const second = await eventually(async () => {
      const res = await p!.req("/api/crashy");
      return res.status === 200 ? ((await res.json()) as { startedAt: number }) : null;
    });
    expect(second.startedAt).not.toBe(first.startedAt);
    const services = (await (await p.req("/api/platform/services")).json()) as { services: Array<{ name: string; restarts: number }> };
    expect(services.services.find((s) => s.name === "crashy")?.restarts).toBe(1);
    expect((await p.req("/api/good")).status).toBe(200);
  });

  test.each([["/crash", "secret-in-crash"], ["/reject", "secret-in-rejection"]])(
    "POST %s: the crash reaches the caller as a code and a short message, without source, path or stack",
    async (path, secret) => {
      p = await boot({ fixtures: ["crashy"] }, { workers: { restartDelayMs: 20 }, breaker: NO_BREAKER });
      const hanging = p.req("/api/crashy/hang", { anonymous: true });
      await p.req("/api/crashy", { anonymous: true }); // answered after the hang reached the worker
      expect((await p.req(`/api/crashy${path}`, { method: "POST", anonymous: true })).status).toBe(200);
      const res = await hanging;
      expect(res.status).toBe(503);
      const text = await res.text();
      expect(JSON.parse(text)).toEqual({ error: { code: "PLT_SERVICE_UNAVAILABLE", message: "crashy: worker crashed" } });
      for (const leak of [secret, "crashy.ts", p.pluginsDir, " at ", "| ", "throw", "Promise"]) expect(text).not.toContain(leak);
      // The operators' listing names the error in one line, without the source or the stack.
      type Listing = { services: Array<{ name: string; lastError?: { message: string } }> };
      const lastError = await eventually(async () => {
        const listing = (await (await p!.req("/api/platform/services")).json()) as Listing;
        return listing.services.find((s) => s.name === "crashy")?.lastError ?? null;
      });
      expect(lastError.message).toBe(`worker crashed: ${secret}`);
    },
  );

  test("a worker stuck in an endless loop is detected by its heartbeat, fails its requests fast and is restarted", async () => {
    p = await boot(
      { fixtures: ["crashy"], files: { "good.ts": good } },
      { workers: { heartbeatMs: 20, heartbeatTimeoutMs: 200, restartDelayMs: 10 }, gateway: { requestTimeoutMs: 20_000 }, breaker: NO_BREAKER },
    );
    const before = ((await (await p.req("/api/crashy")).json()) as { startedAt: number }).startedAt;
    const started = performance.now();
    const stuck = await p.req("/api/crashy/spin", { method: "POST" });
    expect(stuck.status).toBe(503);
    expect(((await stuck.json()) as { error: { code: string; message: string } }).error.message).toContain("no heartbeat");
    expect(performance.now() - started).toBeLessThan(5_000); // far below the 20 s request timeout
    expect((await p.req("/api/good")).status).toBe(200);
    const after = await eventually(async () => {
      const res = await p!.req("/api/crashy");
      return res.status === 200 ? ((await res.json()) as { startedAt: number }).startedAt : null;
    });
    expect(after).not.toBe(before);
  });

  test("a crash loop marks the service failed; the others keep serving", async () => {
    // Polling a restarting service gets 503s, which would open its breaker: keep the breaker out of this test.
    p = await boot(
      { fixtures: ["crashy"], files: { "good.ts": good } },
      { workers: { restartDelayMs: 5, maxRestarts: 2 }, breaker: NO_BREAKER },
    );
    const startedAt = async () => {
      const res = await p!.req("/api/crashy");
      return res.status === 200 ? ((await res.json()) as { startedAt: number }).startedAt : null;
    };
    let worker = await startedAt();
    for (let crash = 1; crash <= 3; crash++) {
      expect((await p.req("/api/crashy/crash", { method: "POST" })).status).toBe(200);
      // wait for the replacement worker (a new startedAt), except after the last crash
      if (crash < 3) {
        worker = await eventually(async () => {
          const now = await startedAt();
          return now !== null && now !== worker ? now : null;
        });
      }
    }
    await eventually(async () => (await health()).services.crashy?.state === "failed");
    const res = await p.req("/api/crashy");
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("PLT_SERVICE_UNAVAILABLE");
    expect((await health()).status).toBe("degraded");
    expect((await p.req("/api/good")).status).toBe(200);
  });
});
