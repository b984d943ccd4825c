/**
 * HTTP and calls across nodes, on a real Mosquitto: every node's gateway serves every service in
 * the cluster (here when it hosts it, otherwise on a node that does), calls go to another node's
 * service with the chain's deadline, and a service two other nodes host is served by both in turn.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { boot, type Booted } from "../../helpers/boot";
import { connectMqtt, eventually, type TestClient } from "../../helpers/mqtt";
import { mosquittoMissing, startMosquitto, type Mosquitto } from "../../helpers/mosquitto";
import { tempDir } from "../../helpers/tmp";

const missing = mosquittoMissing();

/** Says which node serves it (its plugins.config). */
const where = `import { definePlugin } from "plinth";
export default definePlugin({
  name: "where", version: "1.0.0",
  configure: (config) => config as { node: string },
  actions: { which: (ctx) => ctx.config.node },
  routes: { "GET /": (ctx) => ({ node: ctx.config.node }) },
});`;

describe.skipIf(missing !== null)(`requests across nodes on Mosquitto${missing ? ` (skipped: ${missing})` : ""}`, () => {
  const dir = tempDir("plinth-cluster-requests");
  let mosquitto: Mosquitto;
  let a: Booted;
  let b: Booted;
  let c: Booted;
  let outside: TestClient;

  beforeAll(async () => {
    mosquitto = await startMosquitto(dir.path);
    const node = (name: string) => ({ cluster: { url: mosquitto.url, node: name, announceMs: 200 }, plugins: { config: { where: { node: name } } } });
    a = await boot({ fixtures: ["emitter", "chain"], files: { "where.ts": where } }, node("a"));
    b = await boot({ files: { "where.ts": where } }, node("b"));
    c = await boot({ fixtures: ["caller"] }, node("c"));
    outside = await connectMqtt(mosquitto.url);
    await outside.subscribe("events/#", 1);
    // Every node has heard the others.
    for (const p of [a, b, c]) {
      await eventually(async () => ((await (await p.req("/api/platform/nodes")).json()) as Array<{ state: string }>).filter((n) => n.state === "up").length === 3);
    }
  });
  afterAll(async () => {
    await outside?.end();
    for (const p of [a, b, c]) await p?.stop();
    mosquitto?.proc.kill();
    dir[Symbol.dispose]();
  });

  test("a node's gateway serves a route of a service another node hosts: its answer, and its event published there", async () => {
    const res = await c.req("/api/emitter", { json: { type: "crossed", data: { via: "c" } } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ emitted: "crossed" });
    const m = await outside.next((m) => m.topic === "events/emitter/crossed");
    expect(m.json()).toMatchObject({ source: "plinth/emitter", data: { via: "c" } });
  });

  test("another node's service keeps its routes and their errors: an unknown route is 404, a bad body 400", async () => {
    const unknown = await c.req("/api/emitter/nope");
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe("PLT_NOT_FOUND");
    const bad = await c.req("/api/emitter", { json: { type: 42 } });
    expect(bad.status).toBe(400);
  });

  test("a plugin's ctx.call reaches an action on another node", async () => {
    const res = await c.req("/api/caller", { json: { target: "chain.step2" } });
    expect(await res.json()).toEqual({ ok: true, value: { step2: true } });
  });

  test("the chain's deadline holds across nodes: a call given 100 ms to an action that takes 300 ms times out", async () => {
    const started = performance.now();
    const res = await c.req("/api/caller", { json: { target: "chain.step1", timeoutMs: 100 } });
    expect(await res.json()).toMatchObject({ ok: false, typed: true, code: "PLT_TIMEOUT" });
    expect(performance.now() - started).toBeLessThan(300);
  });

  test("a service two other nodes host is served by both, in turn; a node that hosts it serves it itself", async () => {
    const served = new Set<string>();
    for (let i = 0; i < 6; i++) served.add(((await (await c.req("/api/where")).json()) as { node: string }).node);
    expect([...served].sort()).toEqual(["a", "b"]);
    for (let i = 0; i < 3; i++) expect(await (await a.req("/api/where")).json()).toEqual({ node: "a" });
    const calls = new Set<string>();
    for (let i = 0; i < 6; i++) calls.add(((await (await c.req("/api/caller", { json: { target: "where.which" } })).json()) as { value: string }).value);
    expect([...calls].sort()).toEqual(["a", "b"]);
  });
});
