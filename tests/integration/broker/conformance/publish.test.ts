/** MQTT 3.1.1 §3.3 PUBLISH: topic names, flags, and retained messages, on a real platform. */
import { describe, expect, test } from "bun:test";
import { frame, publishFrom, sentinel, str, uniqueId, useBroker, type PublishOptions } from "../../../helpers/raw-mqtt";

const broker = useBroker();
const fresh = (root: string) => `${root}/${uniqueId()}`;

/** Publishes from a session of its own; resolves once the broker has handed the message to every subscriber. */
async function publish(topic: string, payload: string, options: PublishOptions = {}): Promise<void> {
  const c = await broker.session();
  const handed = broker.published((p) => p.topic === topic && p.payload.toString() === payload);
  await publishFrom(c, topic, payload, options);
  await handed;
  await c.disconnect();
}

/** A session that sends `bytes`, is disconnected for it, and whose message reaches nobody subscribed under `root`. */
async function refused(root: string, bytes: Buffer): Promise<void> {
  const sub = await broker.subscriber(`${root}/#`);
  const c = await broker.session();
  c.sendBytes(bytes);
  await c.waitClosed();
  expect(c.received.filter((p) => p.cmd !== "connack")).toEqual([]);
  await sentinel(await broker.session(), sub, `${root}/sentinel`);
  await sub.nothing("publish");
}

describe("PUBLISH", () => {
  test("[MQTT-3.3.2-2] [MQTT-4.7.1-1] a topic name with a wildcard closes the connection; the message is not delivered", async () => {
    const root = fresh("pub/wild");
    await refused(root, frame(0x30, str(`${root}/+`), Buffer.from("x")));
    await refused(root, frame(0x30, str(`${root}/#`), Buffer.from("x")));
  });

  test("[MQTT-4.7.3-1] an empty topic name closes the connection", async () => {
    await refused(fresh("pub/empty"), frame(0x30, str(""), Buffer.from("x")));
  });

  test("[MQTT-1.5.3-2] [MQTT-4.7.3-2] a topic name containing U+0000 closes the connection; the message is not delivered", async () => {
    const root = fresh("pub/nul");
    // The topic "<root>/a\0b": a subscriber to <root>/# would match it.
    await refused(root, frame(0x32, str(`${root}/a\u0000b`), [0, 1], Buffer.from("x")));
  });

  test("[MQTT-1.5.3-1] a topic name with ill-formed UTF-8 closes the connection; the message is not delivered", async () => {
    const root = fresh("pub/utf8");
    await refused(root, frame(0x30, str(Buffer.concat([Buffer.from(`${root}/`), Buffer.from([0xc3, 0x28])])), Buffer.from("x")));
    await refused(root, frame(0x30, str(Buffer.concat([Buffer.from(`${root}/`), Buffer.from([0xed, 0xa0, 0x80])])), Buffer.from("x")));
  });

  test("[MQTT-3.3.1-4] a PUBLISH with both QoS bits set closes the connection", async () => {
    const root = fresh("pub/qos3");
    await refused(root, frame(0x36, str(`${root}/x`), [0, 1], Buffer.from("x")));
  });

  test("[MQTT-2.3.1-1] a QoS 1 or 2 PUBLISH with packet identifier 0 closes the connection", async () => {
    const root = fresh("pub/zero");
    await refused(root, frame(0x32, str(`${root}/x`), [0, 0], Buffer.from("x")));
    await refused(root, frame(0x34, str(`${root}/x`), [0, 0], Buffer.from("x")));
  });

  test("[MQTT-3.3.1-2] a QoS 0 PUBLISH with DUP set closes the connection", async () => {
    const root = fresh("pub/dup0");
    await refused(root, frame(0x38, str(`${root}/x`), Buffer.from("x")));
  });

  test("[MQTT-3.3.1-3] the DUP flag of an incoming PUBLISH is not passed on to subscribers", async () => {
    const topic = fresh("pub/dup");
    const sub = await broker.subscriber(topic, 1);
    await publish(topic, "resent by its publisher", { qos: 1, dup: true });
    const got = await sub.next("publish");
    expect([got.payload.toString(), got.qos, got.dup]).toEqual(["resent by its publisher", 1, false]);
  });

  test("[MQTT-4.3.1-1] a QoS 0 message is delivered with QoS 0, DUP 0 and no packet identifier", async () => {
    const topic = fresh("pub/qos0");
    const sub = await broker.subscriber(topic, 2);
    await publish(topic, "fire and forget");
    const got = await sub.next("publish");
    expect([got.qos, got.dup, got.messageId]).toEqual([0, false, undefined]);
  });

  test("the payload reaches subscribers byte for byte, an empty one included", async () => {
    const topic = fresh("pub/bytes");
    const sub = await broker.subscriber(topic);
    const bytes = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80, 0]);
    const c = await broker.session();
    c.send({ cmd: "publish", topic, payload: bytes, qos: 0 });
    c.send({ cmd: "publish", topic, payload: Buffer.alloc(0), qos: 0 });
    expect((await sub.next("publish")).payload).toEqual(bytes);
    expect((await sub.next("publish")).payload.length).toBe(0);
  });
});

describe("retained messages", () => {
  test("[MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-8] a retained message is stored with its QoS and sent to a new subscription with RETAIN 1", async () => {
    const topic = fresh("retain/stored");
    await publish(topic, "kept", { qos: 1, retain: true });
    const sub = await broker.subscriber(topic, 2);
    const got = await sub.next("publish");
    expect([got.payload.toString(), got.qos, got.retain]).toEqual(["kept", 1, true]);
  });

  test("[MQTT-3.3.1-6] a new wildcard subscription gets the retained message of every matching topic", async () => {
    const root = fresh("retain/many");
    await publish(`${root}/a`, "a", { retain: true });
    await publish(`${root}/b/c`, "b/c", { retain: true });
    await publish(`${root}-other/a`, "not under root", { retain: true });
    const sub = await broker.subscriberSettled(`${root}/#`);
    const got = [await sub.next("publish"), await sub.next("publish")];
    expect(got.map((p) => [p.topic, p.retain]).sort()).toEqual([
      [`${root}/a`, true],
      [`${root}/b/c`, true],
    ]);
    await sub.nothing("publish");
  });

  test("[MQTT-3.3.1-9] a message matching an established subscription is delivered with RETAIN 0, even if published retained", async () => {
    const topic = fresh("retain/live");
    const sub = await broker.subscriber(topic);
    await publish(topic, "live", { retain: true });
    const got = await sub.next("publish");
    expect([got.payload.toString(), got.retain]).toEqual(["live", false]);
  });

  test("[MQTT-3.3.1-7] a QoS 0 retained message replaces the retained message", async () => {
    const topic = fresh("retain/replace");
    await publish(topic, "first", { qos: 1, retain: true });
    await publish(topic, "second", { qos: 0, retain: true });
    const sub = await broker.subscriberSettled(topic, 1);
    const got = await sub.next("publish");
    expect([got.payload.toString(), got.qos]).toEqual(["second", 0]);
    await sub.nothing("publish");
  });

  test("[MQTT-3.3.1-10] a retained message with an empty payload is delivered as usual and removes the retained message", async () => {
    const topic = fresh("retain/clear");
    await publish(topic, "soon gone", { retain: true });
    const live = await broker.subscriber(topic);
    expect((await live.next("publish")).payload.toString()).toBe("soon gone");
    await publish(topic, "", { retain: true });
    const cleared = await live.next("publish");
    expect([cleared.payload.length, cleared.retain]).toEqual([0, false]);
    const late = await broker.subscriberSettled(topic);
    await late.nothing("publish");
  });

  test("[MQTT-3.3.1-11] a zero-byte retained message is not stored", async () => {
    const topic = fresh("retain/empty");
    await publish(topic, "", { qos: 1, retain: true });
    const sub = await broker.subscriberSettled(topic);
    await sub.nothing("publish");
  });

  test("[MQTT-3.3.1-12] a PUBLISH with RETAIN 0 neither stores a message nor replaces the retained one", async () => {
    const topic = fresh("retain/untouched");
    await publish(topic, "retained", { retain: true });
    await publish(topic, "not retained");
    const sub = await broker.subscriberSettled(topic);
    expect((await sub.next("publish")).payload.toString()).toBe("retained");
    await sub.nothing("publish");
  });

  test("[MQTT-3.1.2-7] retained messages outlive the session that published them", async () => {
    const topic = fresh("retain/session");
    const clientId = uniqueId("retainer");
    const publisher = await broker.session({ clientId, clean: false });
    publisher.send({ cmd: "publish", topic, payload: "outlives", qos: 1, messageId: 1, retain: true });
    await publisher.next("puback");
    await publisher.disconnect();
    // A clean session with the same id ends the publisher's session.
    await (await broker.session({ clientId, clean: true })).disconnect();
    const sub = await broker.subscriber(topic);
    expect((await sub.next("publish")).payload.toString()).toBe("outlives");
  });
});
