import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { PlinthError } from "../../../runtime/errors";
import { hostConfig } from "../../helpers/host-config";
import type { Config } from "../../../config/schema";
import { createLogger } from "../../../runtime/log";
import type { CommittedEvent } from "../../../runtime/protocol";
import { WorkerHost, type OutgoingCall, type HostOptions, type HostState } from "../../../runtime/worker/host";
import { eventually } from "../../helpers/mqtt";
import { tempDir, type TempDir } from "../../helpers/tmp";
import { rejection } from "../../helpers/errors";

const PLUGIN = `
export default {
  name: "w",
  version: "1.0.0",
  migrations: ["CREATE TABLE t (v TEXT)"],
  actions: {
    echo: (ctx) => ({ got: ctx.params, caller: ctx.caller, cfg: ctx.config }),
    insert: (ctx) => {
      ctx.db.query("INSERT INTO t VALUES (?)").run(String(ctx.params));
      ctx.emit("inserted", { v: ctx.params });
      return ctx.db.query("SELECT COUNT(*) AS n FROM t").get();
    },
    emitThenFail: (ctx) => {
      ctx.emit("never", { v: 1 });
      throw new Error("handler broke");
    },
    hang: () => new Promise(() => {}),
    crash: () => {
      setTimeout(() => { throw new Error("boom"); }, 0);
      return 1;
    },
    callOut: (ctx) => ctx.call("other.thing", { a: 1 }),
    callFail: (ctx) => ctx.call("missing.thing", {}),
  },
};
`;

interface Harness {
  host: WorkerHost;
  events: Array<{ from: string; events: CommittedEvent[] }>;
  calls: Array<{ from: string; call: OutgoingCall }>;
  states: HostState[];
}

let dir: TempDir;
let pluginPath: string;
const hosts: WorkerHost[] = [];

beforeAll(() => {
  dir = tempDir("plinth-host");
  pluginPath = dir.join("w.js");
  writeFileSync(pluginPath, PLUGIN);
});

afterEach(async () => {
  await Promise.all(hosts.splice(0).map((h) => h.stop(1_000)));
});

afterAll(() => dir[Symbol.dispose]());

let dataSeq = 0;
function harness(path = pluginPath, overrides: Partial<HostOptions> = {}, workers: Partial<Config["workers"]> = {}): Harness & { dataDir: string } {
  const dataDir = dir.join(`data-${++dataSeq}`);
  mkdirSync(dataDir, { recursive: true });
  const h: Harness = { host: undefined as unknown as WorkerHost, events: [], calls: [], states: [] };
  h.host = new WorkerHost({
    source: { kind: "file", path },
    config: hostConfig(dataDir, workers),
    log: createLogger({ level: "silent" }),
    configFor: (name) => ({ name }),
    onCall: async (from, call) => {
      h.calls.push({ from, call });
      if (call.target === "missing.thing") throw new PlinthError("PLT_SERVICE_NOT_FOUND", "no such service");
      return { from, target: call.target, params: call.params };
    },
    onEvents: (from, events) => void h.events.push({ from, events }),
    onStateChange: (s) => h.states.push(s),
    ...overrides,
  });
  hosts.push(h.host);
  return { ...h, dataDir };
}

function writePlugin(name: string, source: string): string {
  const path = dir.join(name);
  writeFileSync(path, source);
  return path;
}


/** Crashes the worker (the action answers, then throws from a timer) and waits for the host to come back. */
async function crashAndRecover(h: Harness, restartsBefore: number): Promise<void> {
  expect(await h.host.request({ t: "action", action: "crash", params: null, caller: null }, 1_000)).toBe(1);
  await eventually(() => h.host.restarts === restartsBefore + 1 && h.host.state === "ready", 3_000);
}

describe("WorkerHost.start", () => {
  test("resolves with the manifest and creates the plugin's database in the data dir", async () => {
    const { host, dataDir } = harness();
    const manifest = await host.start();
    expect(manifest.name).toBe("w");
    expect(manifest.version).toBe("1.0.0");
    expect(manifest.actions).toEqual(["echo", "insert", "emitThenFail", "hang", "crash", "callOut", "callFail"]);
    expect(manifest.routes).toEqual([]);
    expect(host.state).toBe("ready");
    expect(host.manifest).toEqual(manifest);
    expect(host.name).toBe("w");
    expect(existsSync(`${dataDir}/w.sqlite`)).toBe(true);
  });

  test("onReady receives the manifest", async () => {
    const ready: string[] = [];
    const { host } = harness(pluginPath, { onReady: (m) => ready.push(m.name) });
    await host.start();
    expect(ready).toEqual(["w"]);
  });

  test("a plugin file with a syntax error makes start() reject with PLT_PLUGIN_LOAD", async () => {
    const path = writePlugin("syntax.js", `export default { name: "s", version: "1.0.0", actions: { a: ( => 1 } };`);
    const { host } = harness(path);
    const err = await rejection(host.start());
    expect(err.code).toBe("PLT_PLUGIN_LOAD");
    expect(host.state).toBe("failed");
    expect(host.lastError?.code).toBe("PLT_PLUGIN_LOAD");
  });

  test("a plugin that throws at import makes start() reject with PLT_PLUGIN_LOAD and its message", async () => {
    const path = writePlugin("throws.js", `throw new Error("cannot load me");\nexport default { name: "x", version: "1.0.0" };`);
    const { host } = harness(path);
    const err = await rejection(host.start());
    expect(err.code).toBe("PLT_PLUGIN_LOAD");
    expect(err.message).toContain("cannot load me");
    expect(host.state).toBe("failed");
  });

  test("a missing plugin file makes start() reject with PLT_PLUGIN_LOAD", async () => {
    const { host } = harness(dir.join("does-not-exist.js"));
    expect((await rejection(host.start())).code).toBe("PLT_PLUGIN_LOAD");
  });

  test("an invalid definition makes start() reject with PLT_PLUGIN_INVALID", async () => {
    const path = writePlugin("invalid.js", `export default { name: "Bad Name", version: "one" };`);
    const { host } = harness(path);
    const err = await rejection(host.start());
    expect(err.code).toBe("PLT_PLUGIN_INVALID");
    expect(err.message).toContain("name");
    expect(err.message).toContain("version");
  });

  test("a failing migration makes start() reject with PLT_MIGRATION_FAILED", async () => {
    const path = writePlugin("badsql.js", `export default { name: "m", version: "1.0.0", migrations: ["CREATE TABLE ok (v)", "NOT SQL AT ALL"] };`);
    const { host } = harness(path);
    const err = await rejection(host.start());
    expect(err.code).toBe("PLT_MIGRATION_FAILED");
    expect(err.message).toContain("migration 2");
  });

  test("a plugin that never finishes loading makes start() reject with PLT_PLUGIN_LOAD after startTimeoutMs", async () => {
    const path = writePlugin("slow.js", `await new Promise(() => {});\nexport default { name: "slow", version: "1.0.0" };`);
    const { host } = harness(path, {}, { startTimeoutMs: 150 });
    const started = performance.now();
    const err = await rejection(host.start());
    expect(err.code).toBe("PLT_PLUGIN_LOAD");
    expect(err.message).toContain("150 ms");
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
    expect(host.state).toBe("failed");
  });
});

describe("WorkerHost.request", () => {
  test("an action gets its params, caller and the configure()d config", async () => {
    const { host } = harness();
    await host.start();
    const value = await host.request({ t: "action", action: "echo", params: { x: 1 }, caller: "me" }, 1_000);
    expect(value).toEqual({ got: { x: 1 }, caller: "me", cfg: { name: "w" } });
  });

  test("a null caller arrives as null", async () => {
    const { host } = harness();
    await host.start();
    const value = (await host.request({ t: "action", action: "echo", params: "p", caller: null }, 1_000)) as { caller: unknown };
    expect(value.caller).toBeNull();
  });

  test("the plugin's database is migrated and writable; onEvents gets the emitted event after success", async () => {
    const { host, events } = harness();
    await host.start();
    expect(await host.request({ t: "action", action: "insert", params: "a", caller: null }, 1_000)).toEqual({ n: 1 });
    expect(events).toHaveLength(1);
    expect(events[0]!.from).toBe("w");
    expect(events[0]!.events).toHaveLength(1);
    const [e] = events[0]!.events;
    expect(e!.type).toBe("inserted");
    expect(e!.data).toEqual({ v: "a" });
    expect(typeof e!.id).toBe("string");
    expect(Number.isNaN(Date.parse(e!.time))).toBe(false);

    expect(await host.request({ t: "action", action: "insert", params: "b", caller: null }, 1_000)).toEqual({ n: 2 });
    expect(events).toHaveLength(2);
  });

  test("events emitted by a handler that then fails are not delivered; the error is PLT_HANDLER_ERROR", async () => {
    const { host, events } = harness();
    await host.start();
    const err = await rejection(host.request({ t: "action", action: "emitThenFail", params: null, caller: null }, 1_000));
    expect(err.code).toBe("PLT_HANDLER_ERROR");
    expect(err.status).toBe(500);
    expect(err.message).toBe("w: action emitThenFail failed");
    expect(events).toEqual([]);
  });

  test("an action without events does not call onEvents", async () => {
    const { host, events } = harness();
    await host.start();
    await host.request({ t: "action", action: "echo", params: null, caller: null }, 1_000);
    expect(events).toEqual([]);
  });

  test("an unknown action rejects with PLT_ACTION_NOT_FOUND", async () => {
    const { host } = harness();
    await host.start();
    const err = await rejection(host.request({ t: "action", action: "nope", params: null, caller: null }, 1_000));
    expect(err.code).toBe("PLT_ACTION_NOT_FOUND");
    expect(err.status).toBe(404);
  });

  test("ctx.call reaches onCall with the caller's name, and its value comes back", async () => {
    const { host, calls } = harness();
    await host.start();
    const value = await host.request({ t: "action", action: "callOut", params: null, caller: null }, 1_000);
    expect(value).toEqual({ from: "w", target: "other.thing", params: { a: 1 } });
    expect(calls).toHaveLength(1);
    expect(calls[0]!.from).toBe("w");
    expect(calls[0]!.call.target).toBe("other.thing");
    expect(calls[0]!.call.identity).toBeNull();
  });

  test("a call acts for the request that made it: its identity and deadline come from the host's record of it", async () => {
    const { host, calls } = harness();
    await host.start();
    const identity = { sub: "ada", roles: ["user"], via: "jwt" as const };
    const deadline = Date.now() + 800;
    await host.request({ t: "action", action: "callOut", params: null, caller: null, identity, deadline }, 1_000);
    expect(calls[0]!.call.identity).toEqual(identity);
    expect(calls[0]!.call.deadline).toBe(deadline);
  });

  test("an onCall rejection reaches the plugin as a PlinthError with its code", async () => {
    const { host } = harness();
    await host.start();
    const err = await rejection(host.request({ t: "action", action: "callFail", params: null, caller: null }, 1_000));
    expect(err.code).toBe("PLT_SERVICE_NOT_FOUND");
    expect(err.status).toBe(404);
  });

  test("a request that hangs rejects with PLT_TIMEOUT after its timeout; the host keeps serving", async () => {
    const { host } = harness();
    await host.start();
    const started = performance.now();
    const err = await rejection(host.request({ t: "action", action: "hang", params: null, caller: null }, 100));
    const elapsed = performance.now() - started;
    expect(err.code).toBe("PLT_TIMEOUT");
    expect(err.retryable).toBe(true);
    expect(elapsed).toBeGreaterThanOrEqual(90);
    expect(elapsed).toBeLessThan(1_000);
    expect(host.state).toBe("ready");
    expect(await host.request({ t: "action", action: "echo", params: 2, caller: null }, 1_000)).toMatchObject({ got: 2 });
  });

  test("concurrent requests each get their own answer", async () => {
    const { host } = harness();
    await host.start();
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => host.request({ t: "action", action: "echo", params: i, caller: null }, 1_000)),
    );
    expect(answers.map((a) => (a as { got: number }).got)).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  test("a request before start() rejects with PLT_SERVICE_UNAVAILABLE", async () => {
    const { host } = harness();
    const err = await rejection(host.request({ t: "action", action: "echo", params: null, caller: null }, 1_000));
    expect(err.code).toBe("PLT_SERVICE_UNAVAILABLE");
  });
});

describe("WorkerHost crashes", () => {
  test("a crash fails in-flight requests with PLT_SERVICE_UNAVAILABLE and the host restarts", async () => {
    const h = harness();
    await h.host.start();
    expect(await h.host.request({ t: "action", action: "insert", params: "before", caller: null }, 1_000)).toEqual({ n: 1 });

    const inFlight = rejection(h.host.request({ t: "action", action: "hang", params: null, caller: null }, 5_000));
    expect(await h.host.request({ t: "action", action: "crash", params: null, caller: null }, 1_000)).toBe(1);
    const err = await inFlight;
    expect(err.code).toBe("PLT_SERVICE_UNAVAILABLE");
    expect(err.message).toContain("crashed");

    await eventually(() => h.host.state === "ready" && h.host.restarts === 1, 3_000);
    expect(h.host.restarts).toBe(1);
    expect(h.states).toEqual(["restarting", "ready"]);
    expect(h.host.lastError).not.toBeNull();

    // Works again, with the same database and config.
    expect(await h.host.request({ t: "action", action: "insert", params: "after", caller: null }, 1_000)).toEqual({ n: 2 });
    expect(await h.host.request({ t: "action", action: "echo", params: 1, caller: "me" }, 1_000)).toEqual({
      got: 1,
      caller: "me",
      cfg: { name: "w" },
    });
  });

  test("a crash's detail (source lines, path, stack) is logged once; callers and lastError get one short line", async () => {
    const lines: string[] = [];
    const h = harness(pluginPath, { log: createLogger({ level: "info", format: "json", write: (line) => lines.push(line) }) });
    await h.host.start();
    const inFlight = rejection(h.host.request({ t: "action", action: "hang", params: null, caller: null }, 5_000));
    await h.host.request({ t: "action", action: "crash", params: null, caller: null }, 1_000);
    const err = await inFlight;
    expect(err.message).toBe("w: worker crashed");
    expect(h.host.lastError?.message).toBe("worker crashed: boom");
    const detailed = lines.filter((l) => l.includes("boom"));
    expect(detailed).toHaveLength(1);
    expect(detailed[0]).toContain(pluginPath);
  });

  test("an uncaught error while the plugin loads rejects start() with its message line alone", async () => {
    const path = writePlugin("load-timer.js", `setTimeout(() => { throw new Error("load-time boom"); }, 0);
await new Promise((r) => setTimeout(r, 1_000));
export default { name: "lt", version: "1.0.0" };`);
    const { host } = harness(path);
    const err = await rejection(host.start());
    expect(err.code).toBe("PLT_PLUGIN_LOAD");
    expect(err.message).toBe("load-time boom");
  });

  test("a request while restarting rejects with PLT_SERVICE_UNAVAILABLE", async () => {
    const h = harness(pluginPath, {}, { restartDelayMs: 300 });
    await h.host.start();
    await h.host.request({ t: "action", action: "crash", params: null, caller: null }, 1_000);
    await eventually(() => h.host.state === "restarting", 2_000);
    const err = await rejection(h.host.request({ t: "action", action: "echo", params: null, caller: null }, 1_000));
    expect(err.code).toBe("PLT_SERVICE_UNAVAILABLE");
    expect(err.message).toContain("restarting");
  });

  test("more than maxRestarts crashes in a row → failed, and requests reject PLT_SERVICE_UNAVAILABLE", async () => {
    const h = harness();
    await h.host.start();
    await crashAndRecover(h, 0);
    await crashAndRecover(h, 1);
    expect(h.host.restarts).toBe(2);

    await h.host.request({ t: "action", action: "crash", params: null, caller: null }, 1_000);
    await eventually(() => h.host.state === "failed", 2_000);
    // No restart is scheduled after giving up: one would show only once its delay passed (a third
    // restart waits restartDelayMs × 4 = 40 ms), so this is a window on purpose, over that delay.
    await Bun.sleep(80);
    expect(h.host.state).toBe("failed");
    expect(h.host.restarts).toBe(2);
    expect(h.states).toEqual(["restarting", "ready", "restarting", "ready", "failed"]);

    const err = await rejection(h.host.request({ t: "action", action: "echo", params: null, caller: null }, 1_000));
    expect(err.code).toBe("PLT_SERVICE_UNAVAILABLE");
    expect(err.status).toBe(503);
  });
});

describe("WorkerHost.stop", () => {
  test("resolves, ends in state stopped, and closes the database", async () => {
    const { host, dataDir } = harness();
    await host.start();
    await host.request({ t: "action", action: "insert", params: "kept", caller: null }, 1_000);
    await host.stop();
    expect(host.state).toBe("stopped");
    // Closing the last connection checkpoints and removes the WAL file.
    expect(existsSync(`${dataDir}/w.sqlite-wal`)).toBe(false);
    const db = new Database(`${dataDir}/w.sqlite`, { readonly: true });
    try {
      expect(db.query("SELECT v FROM t").all()).toEqual([{ v: "kept" }]);
    } finally {
      db.close();
    }
  });

  test("fails in-flight requests with PLT_SHUTTING_DOWN; later requests get PLT_SERVICE_UNAVAILABLE", async () => {
    const { host } = harness();
    await host.start();
    const inFlight = rejection(host.request({ t: "action", action: "hang", params: null, caller: null }, 5_000));
    await host.stop();
    expect((await inFlight).code).toBe("PLT_SHUTTING_DOWN");
    const err = await rejection(host.request({ t: "action", action: "echo", params: null, caller: null }, 1_000));
    expect(err.code).toBe("PLT_SERVICE_UNAVAILABLE");
    expect(err.message).toContain("stopped");
  });

  test("does not report the deliberate exit as a crash", async () => {
    const h = harness();
    await h.host.start();
    await h.host.stop(); // returns at the worker's close, the last thing a worker reports
    expect(h.host.state).toBe("stopped");
    expect(h.host.restarts).toBe(0);
    expect(h.states).toEqual([]);
  });

  test("cancels a pending restart", async () => {
    const h = harness(pluginPath, {}, { restartDelayMs: 100 });
    await h.host.start();
    await h.host.request({ t: "action", action: "crash", params: null, caller: null }, 1_000);
    await eventually(() => h.host.state === "restarting", 2_000);
    await h.host.stop();
    // A restart not cancelled would start once its delay (100 ms) passed: a window on purpose, over it.
    await Bun.sleep(200);
    expect(h.host.state).toBe("stopped");
    expect(h.host.restarts).toBe(0);
  });

  test("on a host that failed to start resolves and ends stopped", async () => {
    const path = writePlugin("throws2.js", `throw new Error("no");`);
    const { host } = harness(path);
    await rejection(host.start());
    await host.stop();
    expect(host.state).toBe("stopped");
  });

  test("during start() settles the start with PLT_SHUTTING_DOWN at once and stays stopped", async () => {
    const path = writePlugin("slow2.js", `await new Promise(() => {});\nexport default { name: "slow2", version: "1.0.0" };`);
    const { host } = harness(path, {}, { startTimeoutMs: 1_000 });
    const starting = rejection(host.start());
    const started = performance.now();
    await host.stop(500);
    const err = await starting;
    expect(err.code).toBe("PLT_SHUTTING_DOWN");
    expect(performance.now() - started).toBeLessThan(500); // stop() returned at the worker's close, not at its timeout
    expect(host.state).toBe("stopped");
  });
});
