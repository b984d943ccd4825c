/** MQTT 3.1.1 §3.1 CONNECT, §3.2 CONNACK, §3.14 DISCONNECT: what the broker does with them, on a real platform. */
import { describe, expect, test } from "bun:test";
import { connectBytes, frame, sentinel, str, uniqueId, useBroker, type RawClient } from "../../../helpers/raw-mqtt";

const broker = useBroker();

/** The connection was closed by the broker without it sending anything (no CONNACK). */
async function closedSilently(c: RawClient): Promise<void> {
  await c.waitClosed();
  expect(c.received.map((p) => p.cmd)).toEqual([]);
}

/** Sends raw bytes as the first thing on a new connection. */
async function sendFirst(bytes: Buffer): Promise<RawClient> {
  const c = await broker.connect();
  c.sendBytes(bytes);
  return c;
}

describe("CONNECT validation", () => {
  test("[MQTT-3.1.0-1] a first packet other than CONNECT closes the connection and is not processed", async () => {
    const topic = `connect/first/${uniqueId()}`;
    const sub = await broker.subscriber(topic);
    const c = await broker.connect();
    c.send({ cmd: "publish", topic, payload: "before connect", qos: 0 });
    await closedSilently(c);
    await sentinel(await broker.session(), sub, topic);
    await sub.nothing("publish");
  });

  test("[MQTT-3.1.0-2] a second CONNECT is a protocol violation: the client is disconnected (its will published)", async () => {
    const willTopic = `connect/second/${uniqueId()}`;
    const sub = await broker.subscriber(willTopic);
    const c = await broker.session({ will: { topic: willTopic, payload: Buffer.from("gone"), qos: 0, retain: false } });
    c.send({ cmd: "connect", protocolId: "MQTT", protocolVersion: 4, clean: true, keepalive: 0, clientId: uniqueId() });
    await c.waitClosed();
    expect(c.received.filter((p) => p.cmd === "connack")).toHaveLength(1);
    expect((await sub.next("publish")).payload.toString()).toBe("gone");
  });

  test("[MQTT-3.1.2-1] a protocol name other than MQTT closes the connection without CONNACK", async () => {
    await closedSilently(await sendFirst(connectBytes({ protocolName: "MQTX" })));
  });

  test("[MQTT-3.1.2-2] an unsupported protocol level gets CONNACK 0x01, then the connection is closed", async () => {
    for (const level of [2, 6, 0x7f]) {
      const c = await sendFirst(connectBytes({ level }));
      const connack = await c.next("connack");
      expect([level, connack.returnCode, connack.sessionPresent]).toEqual([level, 1, false]);
      await c.waitClosed();
    }
    // MQTT 5 (level 5) parses, and is refused the same way.
    const v5 = await broker.connect(5);
    v5.send({ cmd: "connect", protocolId: "MQTT", protocolVersion: 5, clean: true, keepalive: 0, clientId: uniqueId() });
    const connack = await v5.next("connack");
    expect(connack.returnCode ?? connack.reasonCode).toBe(1);
    await v5.waitClosed();
  });

  test("[MQTT-3.1.2-3] the reserved connect flag set closes the connection without CONNACK", async () => {
    await closedSilently(await sendFirst(connectBytes({ flags: 0x03 })));
  });

  test("[MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-15] will QoS or will retain without the will flag closes the connection", async () => {
    await closedSilently(await sendFirst(connectBytes({ flags: 0x02 | 0x08 })));
    await closedSilently(await sendFirst(connectBytes({ flags: 0x02 | 0x20 })));
  });

  test("[MQTT-3.1.2-14] will QoS 3 closes the connection without CONNACK", async () => {
    await closedSilently(await sendFirst(connectBytes({ will: { topic: "connect/will", qos: 3 } })));
  });

  test("[MQTT-3.1.2-22] a password without a user name closes the connection without CONNACK", async () => {
    await closedSilently(await sendFirst(connectBytes({ password: "secret" })));
  });

  test("[MQTT-3.1.3-10] [MQTT-4.7.1-1] a will topic with a wildcard closes the connection without CONNACK", async () => {
    await closedSilently(await sendFirst(connectBytes({ will: { topic: "connect/will/#" } })));
    await closedSilently(await sendFirst(connectBytes({ will: { topic: "connect/+/will" } })));
  });

  test("[MQTT-1.5.3-2] [MQTT-3.1.3-4] a client id containing U+0000 closes the connection without CONNACK", async () => {
    await closedSilently(await sendFirst(connectBytes({ clientId: "nul\u0000id" })));
  });

  test("[MQTT-1.5.3-1] a client id or user name with ill-formed UTF-8 closes the connection without CONNACK", async () => {
    await closedSilently(await sendFirst(connectBytes({ clientId: Buffer.from([0x61, 0xff, 0x62]) })));
    // An encoded surrogate (U+D800) is ill-formed too.
    await closedSilently(await sendFirst(connectBytes({ clientId: uniqueId(), username: Buffer.from([0xed, 0xa0, 0x80]) })));
  });

  test("[MQTT-3.1.3-5] client ids of 1 to 23 letters and digits are accepted", async () => {
    for (const clientId of ["a", "0123456789abcdefghijKLM"]) {
      const c = await broker.session({ clientId });
      expect(c.connack.returnCode).toBe(0);
      await c.disconnect();
    }
  });
});

describe("client identifier", () => {
  test("[MQTT-3.1.3-8] [MQTT-3.2.2-4] [MQTT-3.2.2-5] an empty client id with clean session 0 gets CONNACK 0x02 and the connection is closed", async () => {
    const c = await sendFirst(connectBytes({ clientId: "", clean: false }));
    const connack = await c.next("connack");
    expect([connack.returnCode, connack.sessionPresent]).toEqual([2, false]);
    await c.waitClosed();
  });

  test("[MQTT-3.1.4-5] nothing a client sends after a refused CONNECT is processed", async () => {
    const topic = `connect/refused/${uniqueId()}`;
    const sub = await broker.subscriber(topic);
    const publish = frame(0x30, str(topic), Buffer.from("after a refused connect"));
    const c = await sendFirst(Buffer.concat([connectBytes({ clientId: "", clean: false }), publish]));
    expect((await c.next("connack")).returnCode).toBe(2);
    await c.waitClosed();
    await sentinel(await broker.session(), sub, topic);
    await sub.nothing("publish");
  });

  test("[MQTT-3.1.3-6] an empty client id with clean session 1 is accepted, as a client of its own", async () => {
    const a = await broker.session({ clientId: "" });
    const b = await broker.session({ clientId: "" });
    expect([a.connack.returnCode, b.connack.returnCode]).toEqual([0, 0]);
    // Neither took over the other: both still do a round trip.
    for (const c of [a, b]) {
      c.send({ cmd: "pingreq" });
      await c.next("pingresp");
    }
    expect([a.closed, b.closed]).toEqual([false, false]);
  });

  test("[MQTT-3.1.4-2] a CONNECT with the client id of a connected client disconnects the existing one", async () => {
    const clientId = uniqueId("takeover");
    const first = await broker.session({ clientId });
    const second = await broker.session({ clientId });
    await first.waitClosed();
    second.send({ cmd: "pingreq" });
    await second.next("pingresp");
    expect(second.closed).toBe(false);
  });
});

describe("sessions and session present", () => {
  test("[MQTT-3.2.2-3] clean session 0 without a stored session: session present 0", async () => {
    const c = await broker.session({ clientId: uniqueId("fresh"), clean: false });
    expect(c.connack.sessionPresent).toBe(false);
  });

  test("[MQTT-3.2.2-2] [MQTT-3.1.2-4] clean session 0 with a stored session: session present 1, subscriptions kept", async () => {
    const clientId = uniqueId("resume");
    const topic = `connect/resume/${uniqueId()}`;
    const first = await broker.subscriber(topic, 1, { clientId, clean: false });
    await first.disconnect();
    const again = await broker.session({ clientId, clean: false });
    expect(again.connack.sessionPresent).toBe(true);
    const publisher = await broker.session();
    publisher.send({ cmd: "publish", topic, payload: "still subscribed", qos: 0 });
    expect((await again.next("publish")).payload.toString()).toBe("still subscribed");
  });

  test("[MQTT-3.1.2-5] QoS 1 and 2 messages published while a persistent session is offline are delivered when it resumes", async () => {
    const clientId = uniqueId("offline");
    const topic = `connect/offline/${uniqueId()}`;
    const first = await broker.subscriber(topic, 2, { clientId, clean: false });
    await first.disconnect();
    const publisher = await broker.session();
    publisher.send({ cmd: "publish", topic, payload: "q1", qos: 1, messageId: 1 });
    publisher.send({ cmd: "publish", topic, payload: "q2", qos: 2, messageId: 2 });
    await publisher.next("puback");
    await publisher.next("pubrec");
    const again = await broker.session({ clientId, clean: false });
    const got = [await again.next("publish"), await again.next("publish")];
    // Ordering is only promised per topic and QoS [MQTT-4.6.0-6]: these two may come either way.
    expect(got.map((p) => [p.payload.toString(), p.qos]).sort()).toEqual([
      ["q1", 1],
      ["q2", 2],
    ]);
  });

  test("[MQTT-3.1.2-6] [MQTT-3.2.2-1] clean session 1 discards the stored session: session present 0, no subscriptions, no queue", async () => {
    const clientId = uniqueId("discard");
    const topic = `connect/discard/${uniqueId()}`;
    const first = await broker.subscriber(topic, 1, { clientId, clean: false });
    await first.disconnect();
    const publisher = await broker.session();
    publisher.send({ cmd: "publish", topic, payload: "queued", qos: 1, messageId: 1 });
    await publisher.next("puback");

    const clean = await broker.session({ clientId, clean: true });
    expect(clean.connack.sessionPresent).toBe(false);
    const handed = broker.published((p) => p.topic === topic && p.payload.toString() === "live");
    publisher.send({ cmd: "publish", topic, payload: "live", qos: 1, messageId: 2 });
    await publisher.next("puback");
    await handed;
    await clean.nothing("publish");
    await clean.disconnect();
    // Nor is anything left for a later persistent session with that id.
    const later = await broker.session({ clientId, clean: false });
    expect(later.connack.sessionPresent).toBe(false);
    await later.nothing("publish");
  });
});

describe("will message", () => {
  test("[MQTT-3.1.2-8] [MQTT-3.1.2-16] the will is published, not retained, when the connection closes without DISCONNECT", async () => {
    const willTopic = `connect/will/${uniqueId()}`;
    const sub = await broker.subscriber(willTopic, 1);
    const c = await broker.session({ will: { topic: willTopic, payload: Buffer.from("bye"), qos: 1, retain: false } });
    c.destroy();
    const will = await sub.next("publish");
    expect([will.payload.toString(), will.qos, will.retain]).toEqual(["bye", 1, false]);
    // Not retained: a new subscriber gets nothing.
    const late = await broker.subscriberSettled(willTopic);
    await late.nothing("publish");
  });

  test("[MQTT-3.1.2-17] a will with will retain set is published as a retained message", async () => {
    const willTopic = `connect/will-retained/${uniqueId()}`;
    const c = await broker.session({ will: { topic: willTopic, payload: Buffer.from("last words"), qos: 0, retain: true } });
    c.destroy();
    const sub = await broker.subscriber(willTopic);
    const will = await sub.next("publish");
    expect([will.payload.toString(), will.retain]).toEqual(["last words", true]);
  });

  test("[MQTT-3.1.2-10] [MQTT-3.14.4-3] DISCONNECT discards the will: it is not published", async () => {
    const willTopic = `connect/will-discarded/${uniqueId()}`;
    const sub = await broker.subscriber(willTopic);
    const clientId = uniqueId("will-discarded");
    const c = await broker.session({ clientId, will: { topic: willTopic, payload: Buffer.from("never"), qos: 0, retain: false } });
    const gone = broker.disconnected(clientId);
    await c.disconnect();
    await gone; // a will would have been published by now
    await sentinel(await broker.session(), sub, willTopic);
    await sub.nothing("publish");
  });

  test("[MQTT-3.14.1-1] a DISCONNECT with reserved bits set closes the connection as a failure (the will is published)", async () => {
    const willTopic = `connect/will-bad-disconnect/${uniqueId()}`;
    const sub = await broker.subscriber(willTopic);
    const c = await broker.session({ will: { topic: willTopic, payload: Buffer.from("published"), qos: 0, retain: false } });
    c.sendBytes([0xe1, 0x00]);
    await c.waitClosed();
    expect((await sub.next("publish")).payload.toString()).toBe("published");
  });
});
