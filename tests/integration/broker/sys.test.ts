/**
 * Broker statistics on `$SYS/broker/...` (runtime/broker/sys.ts), published retained every
 * broker.sysIntervalMs through the real platform, read with MQTT.js.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { boot, type Booted, ON_MAIN_THREAD, inside } from "../../helpers/boot";
import * as reports from "../../helpers/broker-reports";
import { connectMqtt, eventually, roundTrip, type Received, type TestClient } from "../../helpers/mqtt";

const INTERVAL = 100;
let app: Booted;
const clients: TestClient[] = [];

async function client(): Promise<TestClient> {
  const c = await connectMqtt(app.mqttUrl);
  clients.push(c);
  return c;
}

/**
 * Subscribes `c` to `filter` and resolves once the retained messages of that SUBSCRIBE have arrived:
 * it names a second filter after `filter`, a retained sentinel of its own (published on the bus, under
 * `$platform/`, which a client may subscribe to by name), which the broker sends after them (a
 * SUBSCRIBE's retained messages go filter by filter, in order, each written before the next).
 * Returns the sentinel's topic.
 */
async function subscribeSettled(on: Booted, c: TestClient, filter: string): Promise<string> {
  const sentinel = `$platform/sentinel/${crypto.randomUUID()}`;
  await on.platform.bus.publish(sentinel, "sentinel", { retain: true });
  await c.client.subscribeAsync([filter, sentinel], { qos: 0 });
  await c.next((m) => m.topic === sentinel);
  return sentinel;
}

/** The latest value seen on a $SYS topic. */
function latest(c: TestClient, topic: string): string | undefined {
  return c.received.findLast((m: Received) => m.topic === topic)?.payload.toString();
}

beforeAll(async () => {
  app = await boot({}, { broker: { sysIntervalMs: INTERVAL } }, ON_MAIN_THREAD);
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.end()));
  await app.stop();
});

describe("$SYS/broker", () => {
  test("a subscriber gets the retained statistics at once: version, uptime, clients connected", async () => {
    const c = await client();
    await c.subscribe("$SYS/broker/#", 0);
    const version = await c.next((m) => m.topic === "$SYS/broker/version");
    expect(version.payload.toString()).toMatch(/^plinth \d+\.\d+\.\d+/);
    expect((await c.next((m) => m.topic === "$SYS/broker/uptime")).payload.toString()).toMatch(/^\d+ seconds$/);
    await eventually(() => Number(latest(c, "$SYS/broker/clients/connected")) >= 1);
    for (const topic of ["messages/received", "messages/sent", "messages/dropped", "store/messages/dropped", "bytes/received", "bytes/sent", "clients/rejected", "clients/slow"]) {
      await eventually(() => /^\d+$/.test(latest(c, `$SYS/broker/${topic}`) ?? ""));
    }
    for (const topic of ["messages/received", "messages/sent", "bytes/received", "bytes/sent"]) {
      for (const window of ["1min", "5min", "15min"]) await eventually(() => /^\d+\.\d\d$/.test(latest(c, `$SYS/broker/load/${topic}/${window}`) ?? ""));
    }
  });

  test("the counters follow the traffic: a second client, messages received from clients and sent to them", async () => {
    const watcher = await client();
    await watcher.subscribe("$SYS/broker/#", 0);
    await eventually(() => latest(watcher, "$SYS/broker/messages/received") !== undefined);
    const received0 = Number(latest(watcher, "$SYS/broker/messages/received"));
    const sent0 = Number(latest(watcher, "$SYS/broker/messages/sent"));
    const connected0 = Number(latest(watcher, "$SYS/broker/clients/connected"));

    const sub = await client();
    await sub.subscribe("sys-test/data", 1);
    const pub = await client();
    for (let i = 0; i < 20; i++) await pub.client.publishAsync("sys-test/data", String(i), { qos: 1 });
    await eventually(() => sub.received.filter((m) => m.topic === "sys-test/data").length === 20);

    await eventually(() => Number(latest(watcher, "$SYS/broker/messages/received")) >= received0 + 20);
    await eventually(() => Number(latest(watcher, "$SYS/broker/messages/sent")) >= sent0 + 20);
    await eventually(() => Number(latest(watcher, "$SYS/broker/clients/connected")) >= connected0 + 2);
    await eventually(() => Number(latest(watcher, "$SYS/broker/load/messages/received/1min")) > 0);
  });

  test("messages/dropped shows the broker's count of QoS 0 messages dropped for slow clients", async () => {
    const watcher = await client();
    await watcher.subscribe("$SYS/broker/messages/dropped", 0);
    inside(app).stats.droppedQos0 += 7; // as the transport counts them (tests/runtime/broker/backpressure.test.ts)
    const expected = String(inside(app).stats.droppedQos0);
    await eventually(() => latest(watcher, "$SYS/broker/messages/dropped") === expected);
  });

  test("clients may not publish there: a forged value is dropped and the retained one stays", async () => {
    // The values are published once at start and then not for a minute: nothing would overwrite a forged one.
    const still = await boot({}, { broker: { sysIntervalMs: 60_000 } }, ON_MAIN_THREAD);
    try {
      const watcher = await connectMqtt(still.mqttUrl);
      await subscribeSettled(still, watcher, "$SYS/broker/version");
      expect(latest(watcher, "$SYS/broker/version")).toMatch(/^plinth /);
      const forger = await connectMqtt(still.mqttUrl);
      const handed = reports.published(inside(still).aedes, (p) => p.payload.toString() === "forged");
      await forger.client.publishAsync("$SYS/broker/version", "forged", { qos: 1, retain: true });
      await handed; // to whoever it went to: to the watcher, were it not dropped
      await roundTrip(watcher.client);
      const late = await connectMqtt(still.mqttUrl);
      await subscribeSettled(still, late, "$SYS/broker/version");
      for (const c of [watcher, late]) expect(c.received.map((m) => m.payload.toString())).not.toContain("forged");
      expect(latest(late, "$SYS/broker/version")).toMatch(/^plinth /);
      await Promise.all([watcher.end(), forger.end(), late.end()]);
    } finally {
      await still.stop();
    }
  });

  test("[MQTT-4.7.2-1] a '#' subscriber gets none of them", async () => {
    const all = await client();
    const sentinel = await subscribeSettled(app, all, "#"); // none of the retained ones
    // Nor a live one: the next uptime, handed to every subscriber, would have been written to it.
    await reports.published(inside(app).aedes, (p) => p.topic === "$SYS/broker/uptime");
    await roundTrip(all.client);
    expect(all.received.filter((m) => m.topic.startsWith("$") && m.topic !== sentinel)).toEqual([]);
  });
});

describe("aedes' own $SYS/<broker id>/... messages", () => {
  test("a '$SYS/#' subscriber sees only $SYS/broker/...: no other client's id, connection or subscriptions", async () => {
    const watcher = await client();
    await watcher.subscribe("$SYS/#", 1);
    await watcher.subscribe("sys-leak/marker", 1);
    await watcher.next((m) => m.topic === "$SYS/broker/version");

    // What aedes announces on $SYS/<its id>/: new/clients, new/subscribes, new/unsubscribes, disconnect/clients.
    const other = await connectMqtt(app.mqttUrl, { clientId: "sys-leak-other" });
    await other.subscribe("sys-leak/secret", 1);
    await other.client.unsubscribeAsync("sys-leak/secret");
    await other.end();
    // Published after all of them: delivered to the watcher after them, if they were forwarded.
    await app.platform.bus.publish("sys-leak/marker", "after");
    await watcher.next((m) => m.topic === "sys-leak/marker");

    const sys = watcher.received.filter((m) => m.topic.startsWith("$SYS/"));
    expect(sys.length).toBeGreaterThan(0);
    expect(sys.filter((m) => !m.topic.startsWith("$SYS/broker/")).map((m) => m.topic)).toEqual([]);
    expect(watcher.received.filter((m) => m.payload.toString().includes("sys-leak-other"))).toEqual([]);
  });

  test("nor one subscribed to them by name", async () => {
    const watcher = await client();
    const id = inside(app).aedes.id;
    for (const topic of ["new/clients", "disconnect/clients", "new/subscribes"]) await watcher.subscribe(`$SYS/${id}/${topic}`, 0);
    await watcher.subscribe("sys-leak/marker2", 0);
    const other = await connectMqtt(app.mqttUrl);
    await other.subscribe("sys-leak/x", 0);
    await other.end();
    await app.platform.bus.publish("sys-leak/marker2", "after");
    await watcher.next((m) => m.topic === "sys-leak/marker2");
    expect(watcher.received.map((m) => m.topic)).toEqual(["sys-leak/marker2"]);
  });
});

describe("store/messages/dropped", () => {
  for (const persistence of ["sqlite", "memory"] as const) {
    test(`counts the QoS 1 messages dropped from a persistent session's full queue (broker.maxQueuedPerClient), which keeps the newest; persistence ${persistence}`, async () => {
      const small = await boot({}, { broker: { sysIntervalMs: INTERVAL, maxQueuedPerClient: 2, persistence } }, ON_MAIN_THREAD);
      try {
        const away = await connectMqtt(small.mqttUrl, { clientId: `sys-away-${persistence}`, clean: false });
        await away.subscribe("sys-store/news", 1);
        await away.end();
        const pub = await connectMqtt(small.mqttUrl);
        for (let i = 0; i < 5; i++) await pub.client.publishAsync("sys-store/news", String(i), { qos: 1 });
        const watcher = await connectMqtt(small.mqttUrl);
        await watcher.subscribe("$SYS/broker/store/messages/dropped", 0);
        await eventually(() => latest(watcher, "$SYS/broker/store/messages/dropped") === "3");
        const ready = reports.ready(inside(small).aedes, `sys-away-${persistence}`);
        const back = await connectMqtt(small.mqttUrl, { clientId: `sys-away-${persistence}`, clean: false });
        await ready; // its queue sent
        await roundTrip(back.client);
        expect(back.received.map((m) => m.payload.toString())).toEqual(["3", "4"]);
        await Promise.all([pub.end(), watcher.end(), back.end()]);
      } finally {
        await small.stop();
      }
    });
  }
});

describe("broker.sysIntervalMs: 0", () => {
  test("turns them off", async () => {
    const quiet = await boot({}, { broker: { sysIntervalMs: 0 } }, ON_MAIN_THREAD);
    try {
      // On, they would be published (retained) at start: a subscriber would get them at once.
      const c = await connectMqtt(quiet.mqttUrl);
      const sentinel = await subscribeSettled(quiet, c, "$SYS/broker/#");
      expect(c.received.map((m) => m.topic)).toEqual([sentinel]);
      await c.end();
    } finally {
      await quiet.stop();
    }
  });
});
