/**
 * The loader without a broker: real plugin workers and SQLite files in a temp folder, and a fake
 * Bus in place of the embedded broker. What is checked is what only the loader decides: which
 * service and route a request goes to, which calls it lets through, what a commit turns into on the
 * bus (and when its outbox rows are marked sent), who hears commits, and what a service
 * subscribes to on the bus from launch to retirement.
 */
import { builtinServiceNames, nodeServiceName } from "../../../services/names";
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { Database } from "bun:sqlite";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { UserConfig } from "../../../config/index";
import { loadConfig } from "../../../config/load";
import { Breakers } from "../../../runtime/breaker/call";
import { Loader, type RouteMatch } from "../../../runtime/loader/loader";
import { createLogger } from "../../../runtime/log";
import type { CommittedEvent } from "../../../runtime/protocol";
import { registerSdkModule } from "../../../runtime/sdk/module";
import type { HttpResponse } from "../../../runtime/worker/channel";
import { rejection } from "../../helpers/errors";
import { eventually } from "../../helpers/eventually";
import { fakeBus, type FakeBus } from "../../helpers/fake-bus";
import { writePlugins, type PluginSet } from "../../helpers/plugins";
import { tempDir, type TempDir } from "../../helpers/tmp";

// Each loader starts real workers (the built-ins and the test's plugins): seconds on a busy machine.
setDefaultTimeout(30_000);

interface Started extends AsyncDisposable {
  loader: Loader;
  bus: FakeBus;
  dir: TempDir;
  dataDir: string;
  pluginsDir: string;
}

/** A loader on a fake bus over the plugins `set`, in a temp folder removed at the end of the scope. */
async function startLoader(set: PluginSet, overrides: UserConfig = {}, bus = fakeBus(), data?: string, log = createLogger({ level: "silent" })): Promise<Started> {
  registerSdkModule();
  const dir = tempDir("plinth-loader");
  const pluginsDir = writePlugins(dir.join("plugins"), set);
  const { config } = await loadConfig({
    cwd: dir.path,
    overrides: { ...overrides, plugins: { dir: pluginsDir, ...overrides.plugins }, data: { dir: data ?? dir.join("data") }, log: { level: "silent" } },
  });
  const breakers = new Breakers(config.breaker, undefined, undefined, config.bulkhead, (target) => loader.registry.breakerOverrides(target));
  const loader: Loader = new Loader(config, breakers, log, { builtins: { names: builtinServiceNames, node: nodeServiceName } });
  try {
    await loader.start(bus);
  } catch (err) {
    await loader.stop();
    dir[Symbol.dispose]();
    throw err;
  }
  return {
    loader,
    bus,
    dir,
    dataDir: config.data.dir,
    pluginsDir,
    async [Symbol.asyncDispose]() {
      // Sends the test held and left: refused, so that stopping does not wait for their acks.
      bus.refusePending();
      await loader.stop();
      dir[Symbol.dispose]();
    },
  };
}

/** What the gateway hands `http` besides the route. */
const request = (body?: unknown, search = "") => ({ search, headers: {}, body });
const json = (reply: HttpResponse) => JSON.parse(reply.body ?? "null");

describe("start", () => {
  test("puts the built-ins and the plugins in service", async () => {
    await using s = await startLoader({ fixtures: ["emitter", "hostile"] });
    expect([...s.loader.registry.services.keys()].sort()).toEqual(["auth", "emitter", "hostile", "platform"]);
  });

  test("of two plugins with one name, one serves and the other is reported as a duplicate", async () => {
    const named = (v: number) => `import { definePlugin } from "plinth";
export default definePlugin({ name: "twin", version: "1.0.${v}", routes: { "GET /": () => ({ v: ${v} }) } });`;
    await using s = await startLoader({ files: { "a.ts": named(1), "b.ts": named(2) } });
    expect(s.loader.registry.services.get("twin")?.host.manifest?.version).toBe("1.0.1");
    expect(s.loader.registry.failures.map((f) => [f.origin.split("/").at(-1), f.error.code])).toEqual([["b.ts", "PLT_PLUGIN_DUPLICATE"]]);
  });

  test("warns about a service that needs services nobody provides", async () => {
    const lines: Array<Record<string, unknown>> = [];
    const log = createLogger({ level: "debug", format: "json", write: (line) => lines.push(JSON.parse(line)) });
    const needy = `import { definePlugin } from "plinth";
export default definePlugin({ name: "needy", version: "1.0.0", needs: ["emitter", "ghost"], routes: { "GET /": () => 1 } });`;
    await using s = await startLoader({ fixtures: ["emitter"], files: { "needy.ts": needy } }, {}, fakeBus(), undefined, log);
    expect(s.loader.registry.services.has("needy")).toBe(true);
    expect(lines.filter((l) => l.msg === "service needs missing services").map((l) => [l.service, l.missing])).toEqual([["needy", ["ghost"]]]);
  });
});

/** Records every message its subscriptions hand it: a device topic, and a service's events. */
const listener = `import { definePlugin } from "plinth";
export default definePlugin({
  name: "listener", version: "1.0.0",
  migrations: ["CREATE TABLE heard (seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT, type TEXT, data TEXT)"],
  subscribe: {
    "devices/+/state": (ctx) => { ctx.db.query("INSERT INTO heard (topic, type, data) VALUES (?, ?, ?)").run(ctx.topic, ctx.event.type, JSON.stringify(ctx.event.data)); },
    "events/emitter/#": (ctx) => { ctx.db.query("INSERT INTO heard (topic, type, data) VALUES (?, ?, ?)").run(ctx.topic, ctx.event.type, JSON.stringify(ctx.event.data)); },
  },
  routes: { "GET /": (ctx) => ctx.db.query("SELECT topic, type, data FROM heard ORDER BY seq").all() },
});`;

type Heard = { topic: string; type: string; data: string };
type Row = { seq: number; id: string; sent: number };

/** The emitter's outbox, read beside its worker. */
function outbox(dataDir: string, name = "emitter"): Row[] {
  const db = new Database(join(dataDir, `${name}.sqlite`), { readonly: true });
  try {
    return db.query("SELECT seq, id, sent FROM _plinth_outbox_state ORDER BY seq").all() as Row[];
  } finally {
    db.close();
  }
}

/** POSTs an event of `type` to the emitter through the loader. */
async function emit(loader: Loader, type: string, data?: unknown): Promise<HttpResponse> {
  return loader.dispatcher.http(loader.registry.match("emitter", "POST", "/"), request({ type, data }), 5_000);
}

async function heard(loader: Loader): Promise<Heard[]> {
  return json(await loader.dispatcher.http(loader.registry.match("listener", "GET", "/"), request(), 5_000));
}

describe("match", () => {
  test("finds the service's route, with its params", async () => {
    await using s = await startLoader({ fixtures: ["guarded"] });
    const m = s.loader.registry.match("guarded", "GET", "/items/7");
    expect(m.service).toBe(s.loader.registry.services.get("guarded")!);
    expect(s.loader.registry.services.get("guarded")!.host.manifest!.routes[m.route]).toMatchObject({ method: "GET", path: "/items/:id" });
    expect(m.params).toEqual({ id: "7" });
    expect(json(await s.loader.dispatcher.http(m, request(), 5_000))).toEqual({ id: 7 });
  });

  test("trailing slashes are dropped before matching; the root stays /", async () => {
    await using s = await startLoader({ fixtures: ["guarded", "emitter"] });
    expect(s.loader.registry.match("guarded", "GET", "/items/7/").params).toEqual({ id: "7" });
    expect(s.loader.registry.match("guarded", "GET", "/open///").route).toBe(s.loader.registry.match("guarded", "GET", "/open").route);
    expect(s.loader.registry.match("emitter", "POST", "/").service.name).toBe("emitter");
    expect(s.loader.registry.match("emitter", "POST", "//").service.name).toBe("emitter");
    const err = await rejection((async () => s.loader.registry.match("guarded", "GET", "/nowhere/"))());
    expect(err.message).toContain("GET /nowhere in");
  });

  test("an unknown service is PLT_SERVICE_NOT_FOUND; an unknown path or method is PLT_NOT_FOUND", async () => {
    await using s = await startLoader({ fixtures: ["guarded"] });
    const matching = (service: string, method: string, path: string) => rejection((async () => s.loader.registry.match(service, method, path))());
    expect((await matching("ghost", "GET", "/open")).code).toBe("PLT_SERVICE_NOT_FOUND");
    expect((await matching("guarded", "GET", "/nowhere")).code).toBe("PLT_NOT_FOUND");
    expect((await matching("guarded", "DELETE", "/open")).code).toBe("PLT_NOT_FOUND");
  });
});

describe("http", () => {
  test("hands the worker the route, params, query and body and answers with its reply", async () => {
    await using s = await startLoader({ fixtures: ["guarded"] });
    const reply = await s.loader.dispatcher.http(s.loader.registry.match("guarded", "GET", "/echo-header"), request(undefined, "v=hi"), 5_000);
    expect(reply.status).toBe(200);
    expect(reply.headers["x-echo"]).toBe("hi");
    const created = await s.loader.dispatcher.http(s.loader.registry.match("guarded", "POST", "/notes"), request({ text: "one" }), 5_000);
    expect(created.status).toBe(201);
    expect(json(created)).toEqual({ id: 1, text: "one" });
  });

  test("goes through the service's breaker: once it opens, requests are refused without reaching the worker", async () => {
    await using s = await startLoader({ fixtures: ["flaky"] }, { breaker: { failureThreshold: 2 }, plugins: { config: { flaky: { failFirst: 2 } } } });
    const route = () => s.loader.registry.match("flaky", "GET", "/");
    expect((await rejection(s.loader.dispatcher.http(route(), request(), 5_000))).status).toBe(500);
    expect((await rejection(s.loader.dispatcher.http(route(), request(), 5_000))).status).toBe(500);
    expect((await rejection(s.loader.dispatcher.http(route(), request(), 5_000))).code).toBe("PLT_BREAKER_OPEN");
    expect(s.loader.breakers.snapshot().flaky?.state).toBe("open");
    // The refused request never reached the worker: its next call is its third.
    s.loader.breakers.forget("flaky");
    expect(json(await s.loader.dispatcher.http(route(), request(), 5_000))).toEqual({ ok: true, calls: 3 });
  });
});

describe("call", () => {
  test("runs the action with its params, the caller's name and identity", async () => {
    await using s = await startLoader({ fixtures: ["guarded", "obeys"] });
    expect(await s.loader.dispatcher.call("tester", "obeys.echo", { a: [1, 2] })).toEqual({ a: [1, 2] });
    const identity = { sub: "ada", roles: ["ops"], via: "key" as const };
    expect(await s.loader.dispatcher.call("tester", "guarded.whoami", null, undefined, identity)).toEqual({ sub: "ada", roles: ["ops"], caller: "tester" });
    expect(await s.loader.dispatcher.call(null, "guarded.whoami", null)).toEqual({ sub: null, roles: [], caller: null });
  });

  test("a call to no service, or to no action, is refused with a code", async () => {
    await using s = await startLoader({ fixtures: ["obeys"] });
    const ghost = await rejection(s.loader.dispatcher.call("tester", "ghost.echo", null));
    expect(ghost.code).toBe("PLT_SERVICE_NOT_FOUND");
    expect(ghost.message).toContain("ghost.echo");
    expect((await rejection(s.loader.dispatcher.call("tester", "obeys.nothing", null))).code).toBe("PLT_ACTION_NOT_FOUND");
    expect((await rejection(s.loader.dispatcher.call("tester", "not a target", null))).status).toBe(400);
  });

  test("a deadline already passed fails the call without running it", async () => {
    await using s = await startLoader({ fixtures: ["flaky"] }, { plugins: { config: { flaky: { failFirst: 0 } } } });
    expect((await rejection(s.loader.dispatcher.call("tester", "flaky.work", null, Date.now() - 1))).code).toBe("PLT_TIMEOUT");
    expect(json(await s.loader.dispatcher.http(s.loader.registry.match("flaky", "GET", "/"), request(), 5_000))).toEqual({ ok: true, calls: 1 });
  });

  test("only actions declared idempotent are retried", async () => {
    await using s = await startLoader({ fixtures: ["flaky"] }, { plugins: { config: { flaky: { failFirst: 2 } } }, calls: { retries: 2, retryDelayMs: 1 } });
    // Not idempotent: the first failure is the answer (a retry would have reached the third call, which succeeds).
    expect((await rejection(s.loader.dispatcher.call("tester", "flaky.work", null))).status).toBe(500);
    // Idempotent: the second call fails, its retry is the third.
    expect(await s.loader.dispatcher.call("tester", "flaky.workIdempotent", null)).toEqual({ ok: true, calls: 3 });
  });

  test("$node.* is refused unless the call is from the node's own service", async () => {
    await using s = await startLoader({ fixtures: ["snoop"] });
    const refused = await rejection(s.loader.dispatcher.call("tester", "$node.services", null));
    expect(refused.code).toBe("PLT_FORBIDDEN");
    expect(refused.status).toBe(403);
    const described = (await s.loader.dispatcher.call(null, "$node.services", null, undefined, null, true)) as { services: Array<{ name: string }> };
    expect(described.services.map((d) => d.name).sort()).toEqual(["auth", "platform", "snoop"]);
    // From workers: the built-in platform service gets an answer, a plugin does not (whatever it calls itself).
    expect((await rejection(s.loader.dispatcher.http(s.loader.registry.match("snoop", "GET", "/services"), request(), 5_000))).code).toBe("PLT_FORBIDDEN");
    const platform = await s.loader.dispatcher.http(s.loader.registry.match("platform", "GET", "/services"), request(), 5_000);
    expect(platform.status).toBe(200);
    expect((json(platform) as { services: Array<{ name: string }> }).services.map((d) => d.name).sort()).toEqual(["auth", "platform", "snoop"]);
  });
});

describe("committed events", () => {
  test("reach bus.send in commit order, on the service's topics, as CloudEvents of that service", async () => {
    await using s = await startLoader({ fixtures: ["hostile", "emitter"] });
    await s.loader.dispatcher.http(s.loader.registry.match("hostile", "POST", "/emit-bulk"), request(undefined, "n=4"), 5_000);
    await emit(s.loader, "line/added", { n: 1 });
    await s.bus.waitForSend((send) => send.topic === "events/emitter/line/added");
    expect(s.bus.sent.map((send) => send.topic)).toEqual([...Array(4).fill("events/hostile/bulk"), "events/emitter/line/added"]);
    const envelopes = s.bus.sent.map((send) => JSON.parse(send.payload));
    expect(envelopes.slice(0, 4).map((e) => [e.source, e.type, e.sequence, e.data])).toEqual([0, 1, 2, 3].map((i) => ["plinth/hostile", "hostile.bulk", String(i + 1), { i }]));
    expect(envelopes[4]).toMatchObject({ specversion: "1.0", source: "plinth/emitter", type: "emitter.line.added", sequence: "1", data: { n: 1 } });
    expect(envelopes[4].id).toBe(outbox(s.dataDir)[0]!.id);
  });

  test("outbox rows are marked sent only once bus.send calls back without an error", async () => {
    await using s = await startLoader({ fixtures: ["emitter"] });
    s.bus.hold();
    await emit(s.loader, "first");
    const first = await s.bus.waitForSend((send) => send.topic === "events/emitter/first");
    // Committed while the first batch waits for its answer: it leaves with that answer.
    await emit(s.loader, "second");
    expect(outbox(s.dataDir).map((r) => r.sent)).toEqual([0, 0]);
    first.complete();
    const second = await s.bus.waitForSend((send) => send.topic === "events/emitter/second");
    await eventually(() => outbox(s.dataDir)[0]!.sent === 1);
    // The second's send has not called back: its row is not marked, however long it waits.
    expect(second.completed).toBe(false);
    expect(outbox(s.dataDir).map((r) => r.sent)).toEqual([1, 0]);
    second.complete();
    await eventually(() => outbox(s.dataDir)[1]!.sent === 1);
  });

  test("a refused send leaves the rows unsent, and they are relayed to the bus again", async () => {
    await using s = await startLoader({ fixtures: ["emitter"] });
    s.bus.refuse = () => new Error("store is read-only");
    await emit(s.loader, "made", { n: 1 });
    const refused = await s.bus.waitForSend((send) => send.topic === "events/emitter/made");
    s.bus.refuse = () => null;
    const id = JSON.parse(refused.payload).id;
    const again = await s.bus.waitForSend((send) => send !== refused && JSON.parse(send.payload).id === id);
    expect(JSON.parse(again.payload)).toEqual(JSON.parse(refused.payload));
    await eventually(() => outbox(s.dataDir)[0]!.sent === 1);
    expect(outbox(s.dataDir)).toHaveLength(1);
  });

  test("start publishes what was committed but never published, in order", async () => {
    using data = tempDir("plinth-loader-data");
    {
      await using first = await startLoader({ fixtures: ["emitter"] }, {}, fakeBus(), data.path);
      first.bus.hold();
      await emit(first.loader, "a");
      await emit(first.loader, "b");
      // "a" is on its way, unanswered; "b" (committed) waits behind it.
      await first.bus.waitForSend((send) => send.topic === "events/emitter/a");
    }
    expect(outbox(data.path).map((r) => r.sent)).toEqual([0, 0]);
    await using second = await startLoader({ fixtures: ["emitter"] }, {}, fakeBus(), data.path);
    await second.bus.waitForSend((send) => send.topic === "events/emitter/b");
    expect(second.bus.sent.map((send) => send.topic)).toEqual(["events/emitter/a", "events/emitter/b"]);
    await eventually(() => outbox(data.path).every((r) => r.sent === 1));
  });

  test("onCommit listeners hear a commit before the reply of the handler that committed it, publish pending or not", async () => {
    await using s = await startLoader({ fixtures: ["emitter"] });
    const commits: Array<{ service: string; events: readonly CommittedEvent[] }> = [];
    s.loader.events.onCommit((service, events) => commits.push({ service, events }));
    s.bus.hold();
    await emit(s.loader, "made", { n: 1 });
    expect(commits.map((c) => [c.service, c.events.map((e) => [e.seq, e.type, e.data])])).toEqual([["emitter", [[1, "made", { n: 1 }]]]]);
    // A handler that failed committed nothing: nothing to hear.
    await rejection(s.loader.dispatcher.http(s.loader.registry.match("emitter", "POST", "/"), request({ type: "lost", fail: true }), 5_000));
    await emit(s.loader, "after");
    expect(commits.map((c) => c.events[0]!.type)).toEqual(["made", "after"]);
  });

  test("a service's subscribers get its events from the loader, not from the bus", async () => {
    await using s = await startLoader({ fixtures: ["emitter"], files: { "listener.ts": listener } });
    s.bus.hold(); // the broker never takes them
    await emit(s.loader, "made", { n: 1 });
    const got = await eventually(async () => {
      const rows = await heard(s.loader);
      return rows.length > 0 ? rows : null;
    });
    expect(got).toEqual([{ topic: "events/emitter/made", type: "emitter.made", data: JSON.stringify({ n: 1 }) }]);
  });
});

describe("subscriptions on the bus", () => {
  test("each subscription's filter is subscribed on the bus; what the bus delivers reaches the plugin's handler", async () => {
    await using s = await startLoader({ fixtures: ["emitter"], files: { "listener.ts": listener } });
    expect(s.bus.filters()).toEqual(["devices/+/state", "events/emitter/#"]);
    expect(s.bus.deliver("devices/d1/state", JSON.stringify({ on: true }))).toBe(1);
    const got = await eventually(async () => {
      const rows = await heard(s.loader);
      return rows.length > 0 ? rows : null;
    });
    expect(got).toEqual([{ topic: "devices/d1/state", type: "mqtt.message", data: JSON.stringify({ on: true }) }]);
  });

  test("a service event the bus delivers is not handed over again (it comes through the durable delivery)", async () => {
    await using s = await startLoader({ fixtures: ["emitter"], files: { "listener.ts": listener } });
    const envelope = { specversion: "1.0", id: "forged-1", source: "plinth/emitter", type: "emitter.made", time: new Date().toISOString(), data: { forged: true } };
    expect(s.bus.deliver("events/emitter/made", JSON.stringify(envelope))).toBe(1);
    // A sentinel delivered after it: once it is heard, the event would have been too.
    s.bus.deliver("devices/d1/state", "\"sentinel\"");
    const got = await eventually(async () => {
      const rows = await heard(s.loader);
      return rows.length > 0 ? rows : null;
    });
    expect(got.map((r) => r.topic)).toEqual(["devices/d1/state"]);
  });
});

/** A plugin named "vers" whose answers name its version `v`; `auth` is its route's policy. */
const versioned = (v: number, auth = "public") => `import { definePlugin, route } from "plinth";
export default definePlugin({
  name: "vers", version: "1.0.${v}",
  subscribe: { "devices/+/vers": () => {} },
  actions: { which: () => ({ v: ${v} }) },
  routes: { "GET /version": route({ auth: ${JSON.stringify(auth)}, handler: () => ({ v: ${v} }) }) },
});`;

const noClaim = () => {};

/** Launches and installs the plugin file `name` of the test's plugins folder, written from `source`. */
async function put(s: Started, name: string, source: string, previous = s.loader.registry.services.get("vers")) {
  const path = join(s.pluginsDir, name);
  writeFileSync(path, source);
  const host = await s.loader.launch(path, noClaim);
  if (!host) throw new Error(`${name} failed to load: ${JSON.stringify(s.loader.registry.failures)}`);
  return s.loader.install(host, path, previous);
}

describe("lifecycle", () => {
  test("a plugin launched and installed after start serves its routes and subscribes on the bus", async () => {
    await using s = await startLoader({});
    expect(s.bus.filters()).toEqual([]);
    const service = await put(s, "vers.ts", versioned(1));
    expect(s.loader.registry.services.get("vers")).toBe(service);
    expect(s.loader.registry.serviceAt(join(s.pluginsDir, "vers.ts"))).toBe(service);
    expect(s.bus.filters()).toEqual(["devices/+/vers"]);
    expect(json(await s.loader.dispatcher.http(s.loader.registry.match("vers", "GET", "/version"), request(), 5_000))).toEqual({ v: 1 });
    expect(await s.loader.dispatcher.call("tester", "vers.which", null)).toEqual({ v: 1 });
  });

  test("a plugin that fails to load is reported with its file and reason, and forgotten once it loads", async () => {
    await using s = await startLoader({ files: { "broken.ts": "export default 42;\n" } });
    expect(s.loader.registry.services.has("broken")).toBe(false);
    expect(s.loader.registry.failures).toHaveLength(1);
    expect(s.loader.registry.failures[0]!.origin.endsWith("broken.ts")).toBe(true);
    expect(s.loader.registry.describe().failed).toEqual([{ origin: s.loader.registry.failures[0]!.origin, error: s.loader.registry.failures[0]!.error }]);
    const path = join(s.pluginsDir, "broken.ts");
    // Launched again, still broken: one failure, not two.
    expect(await s.loader.launch(path, noClaim)).toBeNull();
    expect(s.loader.registry.failures).toHaveLength(1);
    writeFileSync(path, versioned(1));
    const host = await s.loader.launch(path, noClaim);
    expect(host?.manifest?.name).toBe("vers");
    expect(s.loader.registry.failures).toEqual([]);
  });

  test("a launch whose name claim is refused fails with the claim's error, and leaves nothing in service", async () => {
    await using s = await startLoader({});
    const path = join(s.pluginsDir, "vers.ts");
    writeFileSync(path, versioned(1));
    const host = await s.loader.launch(path, (m) => {
      throw new (class extends Error {
        code = "PLT_PLUGIN_DUPLICATE";
      })(`name ${m.name} is taken`);
    });
    expect(host).toBeNull();
    expect(s.loader.registry.services.has("vers")).toBe(false);
    expect(s.loader.registry.failures.map((f) => f.error.message)).toEqual([expect.stringContaining("name vers is taken")]);
  });

  test("a replacement takes the name: the old version leaves the bus first, and requests matched to it go to the new one", async () => {
    await using s = await startLoader({});
    const old = await put(s, "vers.ts", versioned(1));
    const matched = s.loader.registry.match("vers", "GET", "/version");
    const next = await put(s, "vers.ts", versioned(2), old);
    expect(s.loader.registry.services.get("vers")).toBe(next);
    // Never both on the bus: a message is handed to one version only.
    expect(s.bus.changes).toEqual(["subscribe devices/+/vers", "unsubscribe devices/+/vers", "subscribe devices/+/vers"]);
    expect(old.quiesced).toBe(true);
    expect(json(await s.loader.dispatcher.http(matched, request(), 5_000))).toEqual({ v: 2 });
    expect(await s.loader.dispatcher.call("tester", "vers.which", null)).toEqual({ v: 2 });
    await s.loader.retire(old, 1_000);
    expect(s.loader.registry.services.get("vers")).toBe(next);
    expect(json(await s.loader.dispatcher.http(s.loader.registry.match("vers", "GET", "/version"), request(), 5_000))).toEqual({ v: 2 });
  });

  test("a request matched to a replaced version stays with it when the new one declares its route under another policy", async () => {
    await using s = await startLoader({});
    const old = await put(s, "vers.ts", versioned(1));
    const matched = s.loader.registry.match("vers", "GET", "/version");
    await put(s, "vers.ts", versioned(2, "authenticated"), old);
    expect(json(await s.loader.dispatcher.http(matched, request(), 5_000))).toEqual({ v: 1 });
  });

  test("retire takes the service's routes and calls out, unsubscribes it from the bus and stops its worker; its file stays", async () => {
    await using s = await startLoader({ fixtures: ["flaky"] }, { plugins: { config: { flaky: { failFirst: 0 } } } });
    const vers = await put(s, "vers.ts", versioned(1));
    await s.loader.dispatcher.call("tester", "vers.which", null);
    expect(Object.keys(s.loader.breakers.snapshot())).toContain("vers");
    await s.loader.retire(vers, 1_000);
    expect(vers.host.state).toBe("stopped");
    expect(s.bus.filters()).toEqual([]);
    expect((await rejection((async () => s.loader.registry.match("vers", "GET", "/version"))())).code).toBe("PLT_SERVICE_NOT_FOUND");
    expect((await rejection(s.loader.dispatcher.call("tester", "vers.which", null))).code).toBe("PLT_SERVICE_NOT_FOUND");
    expect(s.loader.registry.describe().services.map((d) => d.name)).not.toContain("vers");
    expect(Object.keys(s.loader.breakers.snapshot())).not.toContain("vers");
    expect(await Bun.file(join(s.dataDir, "vers.sqlite")).exists()).toBe(true);
    // The others serve on.
    expect(await s.loader.dispatcher.call("tester", "flaky.work", null)).toEqual({ ok: true, calls: 1 });
  });

  test("installing a plugin publishes what its database holds unsent; replacing a serving version does not publish it again", async () => {
    using data = tempDir("plinth-loader-data");
    {
      await using first = await startLoader({ fixtures: ["emitter"] }, {}, fakeBus(), data.path);
      first.bus.hold();
      await emit(first.loader, "a");
      await first.bus.waitForSend((send) => send.topic === "events/emitter/a");
    }
    await using s = await startLoader({}, {}, fakeBus(), data.path);
    const source = await Bun.file(join(import.meta.dir, "../../fixtures/plugins/emitter.ts")).text();
    s.bus.hold();
    const old = await put(s, "emitter.ts", source, undefined);
    const a = await s.bus.waitForSend((send) => send.topic === "events/emitter/a");
    // Its ack still on the way (held): the new version must not relay the row again.
    await put(s, "emitter.ts", source.replace('version: "1.0.0"', 'version: "1.0.1"'), old);
    await emit(s.loader, "b");
    await s.bus.waitForSend((send) => send.topic === "events/emitter/b");
    expect(s.bus.sent.map((send) => send.topic)).toEqual(["events/emitter/a", "events/emitter/b"]);
    a.complete();
    await eventually(() => outbox(data.path)[0]!.sent === 1);
  });

  test("describe lists each service's version, origin, state, routes, actions and subscriptions", async () => {
    await using s = await startLoader({ files: { "vers.ts": versioned(3) } });
    const vers = s.loader.registry.describe().services.find((d) => d.name === "vers");
    expect(vers).toMatchObject({
      name: "vers",
      version: "1.0.3",
      state: "ready",
      restarts: 0,
      breaker: "closed",
      routes: ["GET /api/vers/version"],
      actions: ["which"],
      subscriptions: ["devices/+/vers"],
      needs: [],
    });
    expect(vers!.origin.endsWith("vers.ts")).toBe(true);
    expect(s.loader.registry.describe().failed).toEqual([]);
  });

  test("breaker settings: the plugin's own, overridden by the config's for the service or the action", async () => {
    const tuned = `import { definePlugin } from "plinth";
export default definePlugin({
  name: "tuned", version: "1.0.0",
  breaker: { failureThreshold: 7, resetTimeoutMs: 100 },
  actions: { own: { breaker: { slowCallMs: 50, minimumCalls: 2 }, handler: () => 1 }, plain: () => 2 },
});`;
    await using s = await startLoader({ files: { "tuned.ts": tuned } }, { breaker: { services: { tuned: { failureThreshold: 3 } }, actions: { "tuned.own": { minimumCalls: 9 }, "ghost.x": { minimumCalls: 4 } } } });
    expect(s.loader.registry.breakerOverrides("tuned")).toEqual({ failureThreshold: 3, resetTimeoutMs: 100 });
    expect(s.loader.registry.breakerOverrides("tuned.own")).toEqual({ slowCallMs: 50, minimumCalls: 9 });
    expect(s.loader.registry.breakerOverrides("tuned.plain")).toBeUndefined();
    expect(s.loader.registry.breakerOverrides("ghost.x")).toEqual({ minimumCalls: 4 });
  });
});
