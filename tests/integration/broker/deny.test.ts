/**
 * Deny rules in topic ACLs (runtime/broker/acl-rules.ts) through the real platform, with real clients:
 * anonymous clients may publish and subscribe to everything but `secrets/#` (except `secrets/public/#`
 * for subscribers) and `test/nosubscribe`; the admin may do everything.
 */
import { afterAll, expect, test } from "bun:test";
import { connectMqtt, type TestClient } from "../../helpers/mqtt";
import { useBroker } from "../../helpers/raw-mqtt";

const broker = useBroker({
  auth: {
    mqtt: {
      anonymous: true,
      acl: {
        admin: { publish: ["#"], subscribe: ["#"] },
        anonymous: {
          publish: ["#"],
          subscribe: ["#", "secrets/public/#"],
          deny: { publish: ["secrets/#"], subscribe: ["secrets/#", "test/nosubscribe"] },
        },
      },
    },
  },
});

const open: TestClient[] = [];
const anonymous = async () => {
  const c = await connectMqtt(broker.url);
  open.push(c);
  return c;
};
const admin = async () => {
  const c = await connectMqtt(broker.url, { username: "admin", password: broker.booted.adminKey });
  open.push(c);
  return c;
};
afterAll(async () => {
  await Promise.all(open.map((c) => c.end()));
});
let seq = 0;
const marker = () => `marker/${++seq}`;

test("[MQTT-3.9.3-2] SUBSCRIBE to a denied filter gets 0x80; the other filters of the packet are granted", async () => {
  const c = await broker.session();
  c.send({
    cmd: "subscribe",
    messageId: 7,
    subscriptions: [
      { topic: "secrets/#", qos: 1 },
      { topic: "test/nosubscribe", qos: 0 },
      { topic: "news/#", qos: 1 },
      { topic: "secrets/public/#", qos: 1 },
      { topic: "secrets/keys", qos: 0 },
    ],
  });
  const suback = await c.next("suback");
  expect(suback.messageId).toBe(7);
  expect(suback.granted).toEqual([0x80, 0x80, 1, 1, 0x80]);
  // Still connected and served.
  c.send({ cmd: "pingreq" });
  await c.next("pingresp");
});

for (const qos of [0, 1] as const) {
  test(`a subscription to '#' (QoS ${qos}) gets nothing on a denied topic, and everything else in order`, async () => {
    const sub = await anonymous();
    expect(await sub.subscribe("#", qos)).toEqual([qos]);
    const pub = await admin();
    const end = marker();
    for (const topic of ["news/a", "secrets/x", "secrets", "test/nosubscribe", "secrets/public/y", "test/other", "secrets/deep/er/x", end]) {
      await pub.client.publishAsync(topic, topic, { qos: 1 });
    }
    await sub.next((m) => m.topic === end);
    expect(sub.received.map((m) => m.topic)).toEqual(["news/a", "secrets/public/y", "test/other", end]);
  });
}

test("a subscription to 'test/+' does not get test/nosubscribe; a retained message on a denied topic is not sent on SUBSCRIBE", async () => {
  const pub = await admin();
  await pub.client.publishAsync("test/nosubscribe", "kept", { qos: 1, retain: true });
  await pub.client.publishAsync("test/visible", "kept", { qos: 1, retain: true });
  const sub = await anonymous();
  await sub.subscribe("test/+", 1);
  await sub.next((m) => m.topic === "test/visible");
  const end = `test/${marker().replace("/", "-")}`;
  await pub.client.publishAsync("test/nosubscribe", "live", { qos: 1 });
  await pub.client.publishAsync(end, "end", { qos: 1 });
  await sub.next((m) => m.topic === end);
  expect(sub.received.map((m) => m.topic)).toEqual(["test/visible", end]);
  await pub.client.publishAsync("test/nosubscribe", "", { qos: 1, retain: true });
  await pub.client.publishAsync("test/visible", "", { qos: 1, retain: true });
});

test("[MQTT-3.3.5-2] a denied publish is acknowledged and dropped; the client stays connected", async () => {
  const watcher = await admin();
  await watcher.subscribe("#", 1);
  const c = await anonymous();
  await c.client.publishAsync("secrets/x", "leak", { qos: 1 });
  await c.client.publishAsync("secrets/public/x", "leak", { qos: 1 }); // allowed to read, not to write
  const end = marker();
  await c.client.publishAsync(end, "allowed", { qos: 1 });
  await watcher.next((m) => m.topic === end);
  expect(watcher.received.map((m) => m.topic)).toEqual([end]);
  expect(c.client.connected).toBe(true);
  // test/nosubscribe is denied for reading only: publishing there is allowed.
  await c.client.publishAsync("test/nosubscribe", "fine", { qos: 1 });
  await watcher.next((m) => m.topic === "test/nosubscribe");
});

test("the admin, with no deny rule, gets the denied topics", async () => {
  const sub = await admin();
  await sub.subscribe("secrets/#", 1);
  const pub = await admin();
  await pub.client.publishAsync("secrets/x", "for admins", { qos: 1 });
  expect((await sub.next((m) => m.topic === "secrets/x")).payload.toString()).toBe("for admins");
});
