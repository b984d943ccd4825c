/**
 * The broker's thread killed under load (as a fatal fault in aedes would end it): HTTP keeps being
 * answered, the thread comes back on its port from its store, and every event of every acknowledged
 * request reaches an outside MQTT subscriber (a persistent session) and a subscribing plugin: none lost.
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { boot } from "../../helpers/boot";
import { connectMqtt, eventually } from "../../helpers/mqtt";

setDefaultTimeout(60_000);

const sink = `import { definePlugin } from "plinth";
export default definePlugin({
  name: "sink", version: "1.0.0",
  migrations: ["CREATE TABLE seen (n INTEGER PRIMARY KEY)"],
  subscribe: { "events/emitter/#": (ctx) => { ctx.db.query("INSERT INTO seen (n) VALUES (?) ON CONFLICT DO NOTHING").run((ctx.event.data as { n: number }).n); } },
  routes: { "GET /": (ctx) => (ctx.db.query("SELECT count(*) AS n FROM seen").get() as { n: number }).n },
});`;

const LOADERS = 8;

test("killed under load: HTTP answered throughout, the thread back on its port, every acknowledged event delivered to an outside subscriber and to a plugin", async () => {
  await using p = await boot({ fixtures: ["emitter"], files: { "sink.ts": sink } }, { workers: { restartDelayMs: 50 } });
  const broker = p.platform.broker!;
  const port = broker.port;
  await using sub = await connectMqtt(p.mqttUrl, { clientId: "restart-counter", clean: false, reconnectPeriod: 50 });
  await sub.subscribe("events/emitter/#", 1);

  const acknowledged: number[] = [];
  const failed: number[] = [];
  let next = 0;
  let running = true;
  const loaders = Array.from({ length: LOADERS }, async () => {
    while (running) {
      const n = next++;
      const res = await p.req("/api/emitter", { json: { type: "made", data: { n } } });
      await res.arrayBuffer();
      (res.status === 200 ? acknowledged : failed).push(n);
    }
  });
  const reached = (count: number) => eventually(() => acknowledged.length >= count, 20_000, 5);

  await reached(300);
  let restarts = 0;
  for (let i = 0; i < 2; i++) {
    const back = new Promise<void>((resolve) => broker.bus.onReconnect(resolve));
    const before = acknowledged.length;
    broker.kill();
    // While the thread is down or starting, HTTP is answered, and writes with events are acknowledged.
    const health = await p.req("/health");
    expect(health.status).toBe(200);
    await back;
    restarts++;
    await reached(before + 300);
  }
  running = false;
  await Promise.all(loaders);

  expect(restarts).toBe(2);
  expect(broker.port).toBe(port);
  // Writing an event needs the service's database, not the broker: none of these failed.
  expect(failed).toEqual([]);
  const want = new Set(acknowledged);
  const got = () => new Set(sub.received.map((m) => (m.json() as { data: { n: number } }).data.n));
  await eventually(() => got().size >= want.size, 30_000);
  expect([...want].filter((n) => !got().has(n))).toEqual([]);
  await eventually(async () => (await (await p.req("/api/sink")).json()) === want.size, 30_000);
});
