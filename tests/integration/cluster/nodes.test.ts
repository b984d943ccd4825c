/**
 * Two nodes in this process on a real Mosquitto (the cluster's broker, started on a free port): each
 * node's Bus is its connection to it. Outside MQTT clients see every node's events on `events/#`;
 * a plugin subscribed to a device topic gets what an outside client publishes; every node lists
 * every node and what it hosts, and sees one that stops leave; breaker states are kept per node.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { boot, type Booted } from "../../helpers/boot";
import { connectMqtt, eventually, type TestClient } from "../../helpers/mqtt";
import { mosquittoMissing, startMosquitto, type Mosquitto } from "../../helpers/mosquitto";
import { tempDir } from "../../helpers/tmp";

const missing = mosquittoMissing();

const devices = `import { definePlugin } from "plinth";
export default definePlugin({
  name: "devices", version: "1.0.0",
  migrations: ["CREATE TABLE seen (topic TEXT, data TEXT)"],
  subscribe: { "sensors/+/temp": (ctx) => { ctx.db.query("INSERT INTO seen VALUES (?, ?)").run(ctx.topic, JSON.stringify(ctx.event.data)); } },
  routes: { "GET /": (ctx) => ctx.db.query("SELECT * FROM seen").all() },
});`;

interface NodeInfo {
  node: string;
  state: string;
  url?: string;
  services: string[];
}

describe.skipIf(missing !== null)(`a cluster of two nodes on Mosquitto${missing ? ` (skipped: ${missing})` : ""}`, () => {
  const dir = tempDir("plinth-cluster");
  let mosquitto: Mosquitto;
  let a: Booted;
  let b: Booted;
  let outside: TestClient;

  beforeAll(async () => {
    mosquitto = await startMosquitto(dir.path);
    const cluster = (node: string) => ({ cluster: { url: mosquitto.url, node, announceMs: 200 } });
    a = await boot({ fixtures: ["emitter"] }, cluster("a"));
    b = await boot({ files: { "devices.ts": devices } }, cluster("b"));
    outside = await connectMqtt(mosquitto.url);
    await outside.subscribe("events/#", 1);
  });
  afterAll(async () => {
    await outside?.end();
    await a?.stop();
    await b?.stop();
    mosquitto?.proc.kill();
    dir[Symbol.dispose]();
  });

  const nodes = async (p: Booted) => (await (await p.req("/api/platform/nodes")).json()) as NodeInfo[];

  test("every node lists both nodes, each with its gateway and the services it hosts", async () => {
    for (const p of [a, b]) {
      // Up ones only: the test of a node that leaves may have run before this one.
      const listed = await eventually(async () => {
        const up = (await nodes(p)).filter((n) => n.state === "up");
        return up.length === 2 ? up : null;
      });
      expect(listed.map((n) => [n.node, n.state, n.url])).toEqual([
        ["a", "up", a.url],
        ["b", "up", b.url],
      ]);
      expect(listed[0]!.services).toEqual(["auth", "emitter", "platform"]);
      expect(listed[1]!.services).toEqual(["auth", "devices", "platform"]);
    }
  });

  test("an outside client on the cluster's broker gets a node's events as CloudEvents on events/<service>/<type>", async () => {
    expect((await a.req("/api/emitter", { json: { type: "thing/made", data: { n: 1 } } })).status).toBe(200);
    const m = await outside.next((m) => m.topic === "events/emitter/thing/made");
    expect(m.json()).toMatchObject({ specversion: "1.0", source: "plinth/emitter", type: "emitter.thing.made", data: { n: 1 } });
  });

  test("a plugin on a node gets what an outside client publishes on a topic it subscribed to", async () => {
    await outside.client.publishAsync("sensors/7/temp", JSON.stringify({ c: 21.5 }), { qos: 1 });
    const rows = await eventually(async () => {
      const seen = (await (await b.req("/api/devices")).json()) as Array<{ topic: string; data: string }>;
      return seen.length > 0 ? seen : null;
    });
    expect(rows).toEqual([{ topic: "sensors/7/temp", data: JSON.stringify({ c: 21.5 }) }]);
  });

  test("a node that stops cleanly is listed as left by the others", async () => {
    const c = await boot({}, { cluster: { url: mosquitto.url, node: "c", announceMs: 200 } });
    await eventually(async () => (await nodes(a)).some((n) => n.node === "c" && n.state === "up"));
    await c.stop();
    const left = await eventually(async () => (await nodes(a)).find((n) => n.node === "c" && n.state === "left") ?? null);
    expect(left.services).toEqual([]);
  });
});

test("without a cluster, the node lists itself alone", async () => {
  await using p = await boot({ fixtures: ["emitter"] });
  const listed = (await (await p.req("/api/platform/nodes")).json()) as NodeInfo[];
  expect(listed.map((n) => [n.node, n.state, n.services])).toEqual([["local", "up", ["auth", "emitter", "platform"]]]);
});
