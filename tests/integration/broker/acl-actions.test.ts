/**
 * Publish and subscribe are separate decisions, through the real platform with real clients: the
 * "station" role may write its own reports (`reports/%u/#`, `%u` = its key's name) but not read them,
 * and may read the feed, its inbox (`inbox/%c/#`, `%c` = its client id), one service's events and the
 * breakers' announcements, but write none of them.
 * A denied SUBSCRIBE gets 0x80 [MQTT-3.9.3-2]; a denied PUBLISH is acknowledged and dropped [MQTT-3.3.5-2].
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createKey } from "../../helpers/keys";
import { connectMqtt, roundTrip, type TestClient } from "../../helpers/mqtt";
import { useBroker } from "../../helpers/raw-mqtt";

const broker = useBroker({
  auth: {
    mqtt: {
      anonymous: false,
      acl: {
        admin: { publish: ["#"], subscribe: ["#", "$platform/#"] },
        station: {
          publish: ["reports/%u/#"],
          subscribe: ["feed/#", "inbox/%c/#", "events/orders/#", "$platform/breakers/#"],
          deny: { publish: ["reports/%u/draft"], subscribe: ["feed/internal/#"] },
        },
      },
    },
  },
});

/** The station's key: its identity (%u) is "st-1"; its client ids (%c) are "box-<n>". */
let stationKey: string;
beforeAll(() => {
  stationKey = createKey(broker.booted.dataDir, ["station"], "st-1");
});

const open: TestClient[] = [];
afterAll(async () => {
  await Promise.all(open.map((c) => c.end()));
});
let boxes = 0;
async function station(): Promise<TestClient & { clientId: string }> {
  const clientId = `box-${++boxes}`;
  const c = await connectMqtt(broker.url, { clientId, username: "st-1", password: stationKey });
  open.push(c);
  return Object.assign(c, { clientId });
}
async function admin(): Promise<TestClient> {
  const c = await connectMqtt(broker.url, { username: "admin", password: broker.booted.adminKey });
  open.push(c);
  return c;
}

test("[MQTT-3.9.3-2] SUBACK: granted for the subscribe list, 0x80 for filters only the publish list has", async () => {
  const c = await broker.session({ clientId: "box-raw", username: "st-1", password: Buffer.from(stationKey) });
  const filters = [
    ["feed/#", 1],
    ["reports/st-1/#", 0x80], // may publish there, not read it
    ["inbox/box-raw/#", 1],
    ["inbox/st-1/#", 0x80], // %c is the client id, not the identity
    ["reports/box-raw/#", 0x80],
    ["events/orders/#", 1],
    ["events/#", 0x80],
    ["$platform/breakers/#", 1],
    ["$platform/#", 0x80],
    ["feed/internal/#", 0x80],
    ["reports/st-1/temp", 0x80],
  ] as const;
  c.send({ cmd: "subscribe", messageId: 3, subscriptions: filters.map(([topic]) => ({ topic, qos: 1 })) });
  const suback = await c.next("suback");
  expect(filters.map(([topic], i) => [topic, suback.granted[i]])).toEqual(filters.map(([topic, code]) => [topic, code]));
  await c.disconnect();
});

test("[MQTT-3.3.5-2] only publishes the publish list allows arrive; those it may only read are acknowledged and dropped", async () => {
  const watcher = await admin();
  await watcher.subscribe("#", 1);
  const c = await station();
  // Decided for subscribing first: granted; publishing to the same topic is still refused.
  expect(await c.subscribe("feed/news", 1)).toEqual([1]);
  for (const topic of ["feed/news", `inbox/${c.clientId}/note`, "inbox/st-1/note", "reports/st-1/draft", `reports/${c.clientId}/temp`, "events/orders/created"]) {
    await c.client.publishAsync(topic, "dropped", { qos: 1 });
  }
  await c.client.publishAsync("reports/st-1/temp", "21", { qos: 1 });
  // Decided for publishing first: allowed; subscribing to the same topic is still refused.
  await expect(c.subscribe("reports/st-1/temp", 1)).rejects.toThrow(/Subscribe error/);
  await c.client.publishAsync("reports/st-1/end", "end", { qos: 1 });
  await watcher.next((m) => m.topic === "reports/st-1/end");
  expect(watcher.received.map((m) => [m.topic, m.payload.toString()])).toEqual([
    ["reports/st-1/temp", "21"],
    ["reports/st-1/end", "end"],
  ]);
  // The station got none of its own reports back, and stays connected.
  await roundTrip(c.client);
  expect(c.received.map((m) => m.topic)).toEqual([]);
  expect(c.client.connected).toBe(true);
});

test("what is forwarded follows the subscribe list: feed, inbox, the service's events and the breakers arrive; denied ones do not", async () => {
  const c = await station();
  for (const filter of ["feed/#", `inbox/${c.clientId}/#`, "events/orders/#", "$platform/breakers/#"]) expect([filter, await c.subscribe(filter, 1)]).toEqual([filter, [1]]);
  // The station may publish on reports/st-1/... (it cannot subscribe there, so nothing can arrive there).
  await c.client.publishAsync("reports/st-1/temp", "21", { qos: 1 });
  const bus = broker.booted.platform.bus;
  for (const topic of ["feed/news", "feed/internal/x", `inbox/${c.clientId}/note`, "events/orders/created", "$platform/breakers/orders", "feed/end"]) {
    await bus.publish(topic, topic, { qos: 1 });
  }
  await c.next((m) => m.topic === "feed/end");
  expect(c.received.map((m) => m.topic)).toEqual(["feed/news", `inbox/${c.clientId}/note`, "events/orders/created", "$platform/breakers/orders", "feed/end"]);
});

test("a will on a topic the station may only read is refused at CONNECT; one on its reports is accepted", async () => {
  const will = (topic: string, clientId = `box-${++boxes}`) => ({ clientId, username: "st-1", password: stationKey, will: { topic, payload: Buffer.from("gone"), qos: 1 as const, retain: false } });
  await expect(connectMqtt(broker.url, will("feed/news"))).rejects.toThrow(/Not authorized/i);
  await expect(connectMqtt(broker.url, will("inbox/box-inbox/gone", "box-inbox"))).rejects.toThrow(/Not authorized/i);
  const ok = await connectMqtt(broker.url, will("reports/st-1/status"));
  open.push(ok);
  expect(ok.client.connected).toBe(true);
});
