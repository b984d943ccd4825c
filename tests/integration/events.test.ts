/**
 * Events: published as CloudEvents in the emitting service's own namespace,
 * only when the handler succeeds; outside clients cannot publish into the
 * platform's namespaces; plugins receive device messages wrapped as events.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { boot, NO_BREAKER, type Booted } from "../helpers/boot";
import { connectMqtt, eventually, type TestClient } from "../helpers/mqtt";

const sink = `import { definePlugin } from "plinth";
export default definePlugin({
  name: "sink", version: "1.0.0",
  migrations: ["CREATE TABLE seen (topic TEXT, type TEXT, source TEXT, data TEXT)"],
  subscribe: {
    "events/emitter/#": (ctx) => { ctx.db.query("INSERT INTO seen VALUES (?, ?, ?, ?)").run(ctx.topic, ctx.event.type, ctx.event.source, JSON.stringify(ctx.event.data)); },
    "sensors/+/temp": (ctx) => { ctx.db.query("INSERT INTO seen VALUES (?, ?, ?, ?)").run(ctx.topic, ctx.event.type, ctx.event.source, JSON.stringify(ctx.event.data)); },
  },
  routes: { "GET /": (ctx) => ctx.db.query("SELECT * FROM seen").all() },
});`;

let p: Booted;
let sub: TestClient;

beforeAll(async () => {
  // The invalid-emit rows below are 500s; keep the breaker out of the way.
  p = await boot({ fixtures: ["emitter"], files: { "sink.ts": sink } }, { breaker: NO_BREAKER });
  sub = await connectMqtt(p.mqttUrl);
  await sub.subscribe("#");
  await sub.subscribe("$platform/#");
});
afterAll(async () => {
  await sub?.end();
  await p?.stop();
});

type Seen = { topic: string; type: string; source: string; data: string };
const seen = async () => (await (await p.req("/api/sink")).json()) as Seen[];

describe("ctx.emit", () => {
  test("publishes a CloudEvent on events/<service>/<type> and subscribers get it", async () => {
    const res = await p.req("/api/emitter", { json: { type: "thing/made", data: { n: 1 } } });
    expect(res.status).toBe(200);
    const m = await sub.next((m) => m.topic === "events/emitter/thing/made");
    expect(m.json()).toMatchObject({ specversion: "1.0", source: "plinth/emitter", type: "emitter.thing.made", data: { n: 1 } });
    const rows = await eventually(async () => {
      const found = (await seen()).filter((r) => r.topic === "events/emitter/thing/made");
      return found.length > 0 ? found : null;
    });
    expect(rows).toEqual([{ topic: "events/emitter/thing/made", type: "emitter.thing.made", source: "plinth/emitter", data: '{"n":1}' }]);
  });

  test("a handler that throws after emitting publishes nothing", async () => {
    const res = await p.req("/api/emitter", { json: { type: "doomed", fail: true } });
    expect(res.status).toBe(500);
    // A service's events are published in the order they were committed: once one emitted after it
    // arrives, the doomed one would have.
    expect((await p.req("/api/emitter", { json: { type: "after-doomed" } })).status).toBe(200);
    await sub.next((m) => m.topic === "events/emitter/after-doomed");
    expect(sub.received.some((m) => m.topic.endsWith("/doomed"))).toBe(false);
  });

  for (const type of ["a/+/b", "#", "", "../../orders/created", "a//b", "sp ace"]) {
    test(`invalid type ${JSON.stringify(type)} is refused with PLT_EVENT_INVALID`, async () => {
      const res = await p.req("/api/emitter", { json: { type } });
      expect(res.status).toBe(500);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("PLT_EVENT_INVALID");
    });
  }
});

describe("outside MQTT clients", () => {
  for (const [i, topic] of ["events/emitter/forged", "$platform/breakers/emitter", "$SYS/x"].entries()) {
    test(`cannot publish into ${topic}: acknowledged and dropped, not delivered [MQTT-3.3.5-2]`, async () => {
      const intruder = await connectMqtt(p.mqttUrl);
      await intruder.client.publishAsync(topic, JSON.stringify({ specversion: "1.0", id: "forged", data: {} }), { qos: 1 });
      // A message the intruder sends afterwards arrives: by then the forged one would have too.
      const probe = `sensors/probe${i}/temp`;
      await intruder.client.publishAsync(probe, "{}", { qos: 1 });
      await sub.next((m) => m.topic === probe);
      await eventually(async () => (await seen()).some((r) => r.topic === probe));
      expect(sub.received.some((m) => m.topic === topic && m.payload.toString().includes("forged"))).toBe(false);
      expect((await seen()).some((r) => r.topic === topic)).toBe(false);
      expect(intruder.client.connected).toBe(true);
      await intruder.end();
    });
  }

  test("device messages on other topics reach subscribed plugins wrapped as CloudEvents", async () => {
    const device = await connectMqtt(p.mqttUrl);
    await device.client.publishAsync("sensors/kitchen/temp", JSON.stringify({ celsius: 21.5 }), { qos: 1 });
    const rows = await eventually(async () => {
      const found = (await seen()).filter((r) => r.topic === "sensors/kitchen/temp");
      return found.length > 0 ? found : null;
    });
    expect(rows).toEqual([{ topic: "sensors/kitchen/temp", type: "mqtt.message", source: "mqtt", data: '{"celsius":21.5}' }]);
    await device.end();
  });
});
