/** MQTT 3.1.1 §3.8–3.11 SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, on a real platform. */
import { describe, expect, test } from "bun:test";
import { frame, publishFrom, str, uniqueId, useBroker, type RawClient } from "../../../helpers/raw-mqtt";

const broker = useBroker();
const fresh = (root: string) => `${root}/${uniqueId()}`;

/** Publishes from a session of its own; resolves once the broker has handed the message to every subscriber. */
async function publish(topic: string, payload: string, qos: 0 | 1 | 2 = 0, retain = false): Promise<void> {
  const c = await broker.session();
  const handed = broker.published((p) => p.topic === topic && p.payload.toString() === payload);
  await publishFrom(c, topic, payload, { qos, retain });
  await handed;
  await c.disconnect();
}

/** A session that sent `bytes` and must be disconnected for it, without an answer of the kind `cmd`. */
async function closedFor(bytes: Buffer, cmd: "suback" | "unsuback"): Promise<RawClient> {
  const c = await broker.session();
  c.sendBytes(bytes);
  await c.waitClosed();
  expect(c.received.filter((p) => p.cmd === cmd)).toEqual([]);
  return c;
}

describe("SUBSCRIBE and SUBACK", () => {
  test("[MQTT-3.8.4-1] [MQTT-3.8.4-2] a SUBSCRIBE is answered by a SUBACK with its packet identifier", async () => {
    const c = await broker.session();
    c.send({ cmd: "subscribe", messageId: 4242, subscriptions: [{ topic: fresh("sub/ack"), qos: 1 }] });
    const suback = await c.next("suback");
    expect([suback.messageId, suback.granted]).toEqual([4242, [1]]);
  });

  test("[MQTT-3.8.4-5] [MQTT-3.9.3-1] one return code per topic filter, in order, each the QoS granted", async () => {
    const c = await broker.session();
    const filters = [fresh("sub/order"), fresh("sub/order"), fresh("sub/order")];
    c.send({ cmd: "subscribe", messageId: 7, subscriptions: [{ topic: filters[0]!, qos: 2 }, { topic: filters[1]!, qos: 0 }, { topic: filters[2]!, qos: 1 }] });
    expect((await c.next("suback")).granted).toEqual([2, 0, 1]);
  });

  test("[MQTT-3.8.4-4] [MQTT-3.8.4-5] a filter named twice in one SUBSCRIBE gets a return code each time; the last one is in effect", async () => {
    const repeated = fresh("sub/twice");
    const other = fresh("sub/twice");
    const c = await broker.session();
    c.send({
      cmd: "subscribe",
      messageId: 9,
      subscriptions: [
        { topic: repeated, qos: 0 },
        { topic: other, qos: 2 },
        { topic: repeated, qos: 1 },
      ],
    });
    const suback = await c.next("suback");
    expect([suback.messageId, suback.granted]).toEqual([9, [0, 2, 1]]);
    await publish(repeated, "once, at QoS 1", 1);
    const got = await c.next("publish");
    expect([got.payload.toString(), got.qos]).toEqual(["once, at QoS 1", 1]);
    await c.nothing("publish");
  });

  test("[MQTT-3.8.4-3] subscribing again to a filter replaces the subscription and re-sends the retained messages", async () => {
    const topic = fresh("sub/replace");
    await publish(topic, "retained", 1, true);
    const c = await broker.subscriber(topic, 0);
    const first = await c.next("publish");
    expect([first.payload.toString(), first.qos, first.retain]).toEqual(["retained", 0, true]);

    c.send({ cmd: "subscribe", messageId: 2, subscriptions: [{ topic, qos: 1 }] });
    expect((await c.next("suback")).granted).toEqual([1]);
    const again = await c.next("publish");
    expect([again.payload.toString(), again.qos, again.retain]).toEqual(["retained", 1, true]);
    c.send({ cmd: "puback", messageId: again.messageId! });

    // One subscription, now at QoS 1: a live message arrives once, at QoS 1.
    await publish(topic, "live", 1);
    const live = await c.next("publish");
    expect([live.payload.toString(), live.qos, live.retain]).toEqual(["live", 1, false]);
    await c.nothing("publish");
  });

  test("[MQTT-3.8.4-6] a message is delivered at the lower of its QoS and the QoS granted", async () => {
    const cases: Array<[granted: 0 | 1 | 2, published: 0 | 1 | 2, delivered: number]> = [
      [0, 2, 0],
      [1, 2, 1],
      [2, 1, 1],
      [1, 0, 0],
    ];
    for (const [granted, published, delivered] of cases) {
      const topic = fresh("sub/min");
      const c = await broker.subscriber(topic, granted);
      await publish(topic, "m", published);
      const qos: number = (await c.next("publish")).qos;
      expect([granted, published, qos]).toEqual([granted, published, delivered]);
    }
  });

  test("[MQTT-3.8.4-6] the QoS granted caps messages matched through a wildcard filter too", async () => {
    const root = fresh("sub/wild");
    const plus = await broker.subscriber(`${root}/+`, 1);
    const hash = await broker.subscriber(`${root}/#`, 0);
    await publish(`${root}/x`, "qos 2", 2);
    expect((await plus.next("publish")).qos).toBe(1);
    expect((await hash.next("publish")).qos).toBe(0);
  });

  test("[MQTT-3.8.4-6] the QoS granted caps messages queued while a persistent session was offline", async () => {
    const clientId = uniqueId("capped");
    const root = fresh("sub/offline");
    const first = await broker.subscriber(`${root}/+`, 1, { clientId, clean: false });
    await first.disconnect();
    await publish(`${root}/x`, "queued at QoS 2", 2);
    const again = await broker.session({ clientId, clean: false });
    const got = await again.next("publish");
    expect([got.payload.toString(), got.qos]).toEqual(["queued at QoS 2", 1]);
  });

  test("[MQTT-3.8.1-1] reserved bits of the SUBSCRIBE fixed header other than 0010 close the connection", async () => {
    await closedFor(frame(0x80, [0, 1], str("sub/flags"), [0]), "suback");
  });

  test("[MQTT-3.8.3-3] a SUBSCRIBE without a topic filter closes the connection", async () => {
    await closedFor(frame(0x82, [0, 1]), "suback");
  });

  test("[MQTT-3-8.3-4] a requested QoS of 3, or reserved bits set in the requested QoS byte, close the connection", async () => {
    await closedFor(frame(0x82, [0, 1], str("sub/qos3"), [3]), "suback");
    await closedFor(frame(0x82, [0, 1], str("sub/reserved"), [0x04]), "suback");
  });

  test("[MQTT-2.3.1-1] a SUBSCRIBE with packet identifier 0 closes the connection", async () => {
    await closedFor(frame(0x82, [0, 0], str("sub/zero"), [0]), "suback");
  });

  test("[MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-4.7.3-1] an invalid topic filter closes the connection", async () => {
    for (const filter of ["", "a/#/b", "#/a", "a#", "a/b#", "a+", "a/+b", "+a/b", "++", "a/++/b"]) {
      const c = await closedFor(frame(0x82, [0, 1], str(filter), [0]), "suback");
      expect([filter, c.closed]).toEqual([filter, true]);
    }
  });

  test("[MQTT-1.5.3-2] a topic filter containing U+0000 closes the connection", async () => {
    await closedFor(frame(0x82, [0, 1], str("sub/nul\u0000/#"), [0]), "suback");
  });
});

describe("refused subscriptions", () => {
  // A platform whose ACL lets anonymous clients subscribe under open/ only.
  const restricted = useBroker({ auth: { mqtt: { acl: { anonymous: { publish: ["#"], subscribe: ["open/#"] } } } } });

  test("[MQTT-3.8.4-5] [MQTT-3.9.3-2] a refused filter gets 0x80 in its place, each time it is named, the others their QoS", async () => {
    const c = await restricted.session();
    const closed = fresh("closed");
    c.send({
      cmd: "subscribe",
      messageId: 3,
      subscriptions: [
        { topic: fresh("open"), qos: 1 },
        { topic: closed, qos: 0 },
        { topic: fresh("open"), qos: 2 },
        { topic: closed, qos: 1 },
      ],
    });
    expect((await c.next("suback")).granted).toEqual([1, 0x80, 2, 0x80]);
  });
});

describe("UNSUBSCRIBE and UNSUBACK", () => {
  test("[MQTT-3.10.4-4] [MQTT-3.10.4-5] UNSUBACK carries the packet identifier, even when no filter was subscribed", async () => {
    const c = await broker.session();
    c.send({ cmd: "unsubscribe", messageId: 321, unsubscriptions: [fresh("unsub/none")] });
    expect((await c.next("unsuback")).messageId).toBe(321);
  });

  test("[MQTT-3.10.4-1] [MQTT-3.10.4-2] after UNSUBACK no new messages are delivered for the filter", async () => {
    const topic = fresh("unsub/stop");
    const c = await broker.subscriber(topic, 1);
    c.send({ cmd: "unsubscribe", messageId: 5, unsubscriptions: [topic] });
    await c.next("unsuback");
    await publish(topic, "after unsubscribe", 1);
    await c.nothing("publish");
  });

  test("[MQTT-3.10.4-1] filters are compared character by character: unsubscribing a topic does not narrow a wildcard subscription", async () => {
    const root = fresh("unsub/exact");
    const c = await broker.subscriber(`${root}/#`, 0);
    c.send({ cmd: "unsubscribe", messageId: 6, unsubscriptions: [`${root}/a`, `${root}/+`] });
    await c.next("unsuback");
    await publish(`${root}/a`, "still here");
    expect((await c.next("publish")).payload.toString()).toBe("still here");
  });

  test("[MQTT-3.10.4-6] several filters in one UNSUBSCRIBE are removed with a single UNSUBACK", async () => {
    const a = fresh("unsub/many");
    const b = fresh("unsub/many");
    const c = await broker.session();
    c.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: a, qos: 0 }, { topic: b, qos: 0 }] });
    await c.next("suback");
    c.send({ cmd: "unsubscribe", messageId: 2, unsubscriptions: [a, b] });
    expect((await c.next("unsuback")).messageId).toBe(2);
    await c.nothing("unsuback");
    await publish(a, "a");
    await publish(b, "b");
    await c.nothing("publish");
  });

  test("[MQTT-3.10.1-1] reserved bits of the UNSUBSCRIBE fixed header other than 0010 close the connection", async () => {
    await closedFor(frame(0xa0, [0, 1], str("unsub/flags")), "unsuback");
  });

  test("[MQTT-3.10.3-2] an UNSUBSCRIBE without a topic filter closes the connection", async () => {
    await closedFor(frame(0xa2, [0, 1]), "unsuback");
  });

  test("[MQTT-2.3.1-1] an UNSUBSCRIBE with packet identifier 0 closes the connection", async () => {
    await closedFor(frame(0xa2, [0, 0], str("unsub/zero")), "unsuback");
  });

  test("[MQTT-4.7.1-2] [MQTT-4.7.1-3] an UNSUBSCRIBE with an invalid topic filter closes the connection", async () => {
    await closedFor(frame(0xa2, [0, 1], str("unsub/a+")), "unsuback");
    await closedFor(frame(0xa2, [0, 1], str("unsub/#/a")), "unsuback");
  });
});
