/**
 * MQTT 3.1.1 rules on what a client gets, against both session stores (SQLite and aedes' memory one):
 * overlapping subscriptions [MQTT-3.3.5-1], session present for a session without subscriptions
 * [MQTT-3.2.2-2], and retained messages sent on subscribe at QoS 1 and 2, which are deliveries like any
 * other (acknowledged, and resent when a session resumes) [MQTT-3.8.4-6] [MQTT-4.4.0-1].
 */
import { describe, expect, test } from "bun:test";
import { SESSION_FILTER } from "../../../../runtime/broker/conformance/sessions";
import { boot } from "../../../helpers/boot";
import { frame, publishFrom, rawSession, str, uniqueId, useBroker, type BrokerUnderTest, type RawClient } from "../../../helpers/raw-mqtt";
import { tempDir } from "../../../helpers/tmp";

const fresh = (root: string) => `${root}/${uniqueId()}`;

/** Publishes from a session of its own; resolves once the broker has handed the message to every subscriber. */
async function publish(broker: BrokerUnderTest, topic: string, payload: string, qos: 0 | 1 | 2 = 0, retain = false): Promise<void> {
  const c = await broker.session();
  const handed = broker.published((p) => p.topic === topic && p.payload.toString() === payload);
  await publishFrom(c, topic, payload, { qos, retain });
  await handed;
  await c.disconnect();
}

/** A session subscribed to each filter at its QoS, one SUBSCRIBE per filter, in order. */
async function subscribed(broker: BrokerUnderTest, subs: Array<[string, 0 | 1 | 2]>, options = {}): Promise<RawClient> {
  const c = await broker.session(options);
  let messageId = 1;
  for (const [topic, qos] of subs) {
    c.send({ cmd: "subscribe", messageId: messageId++, subscriptions: [{ topic, qos }] });
    await c.next("suback");
  }
  return c;
}

for (const persistence of ["sqlite", "memory"] as const) {
  describe(`broker.persistence ${persistence}`, () => {
    const broker = useBroker({ broker: { persistence } });

    describe("overlapping subscriptions", () => {
      // Both orders, since which filter aedes matches first decides what it does.
      const overlaps: Array<[string, Array<[string, 0 | 1 | 2]>, 0 | 1 | 2, number]> = [
        ["a/+ QoS 0, then a/# QoS 1", [["+", 0], ["#", 1]], 1, 1],
        ["a/# QoS 1, then a/+ QoS 0", [["#", 1], ["+", 0]], 1, 1],
        ["a/x QoS 0, then a/# QoS 1", [["x", 0], ["#", 1]], 1, 1],
        ["a/# QoS 1, then a/x QoS 0", [["#", 1], ["x", 0]], 1, 1],
        ["a/x QoS 1, then a/# QoS 2", [["x", 1], ["#", 2]], 2, 2],
        ["a/+ QoS 2, then a/# QoS 1, message at QoS 1", [["+", 2], ["#", 1]], 1, 1],
        ["a/+ QoS 0, then a/# QoS 2, message at QoS 0", [["+", 0], ["#", 2]], 0, 0],
      ];
      for (const [name, filters, published, delivered] of overlaps) {
        test(`[MQTT-3.3.5-1] one delivery, at the highest QoS of the matching subscriptions: ${name}`, async () => {
          const root = fresh("overlap");
          for (const clean of [true, false]) {
            const c = await subscribed(broker, filters.map(([f, q]) => [`${root}/${f}`, q]), { clean, clientId: uniqueId("overlap") });
            await publish(broker, `${root}/x`, "m", published);
            const got = await c.next("publish");
            expect([clean, got.qos as number]).toEqual([clean, delivered]);
            if (got.qos === 1) c.send({ cmd: "puback", messageId: got.messageId! });
            if (got.qos === 2) c.send({ cmd: "pubrec", messageId: got.messageId! });
            await c.nothing("publish");
            await c.disconnect();
          }
        });
      }

      test("[MQTT-3.3.5-1] [MQTT-4.4.0-1] an acknowledged overlapping delivery is not resent when the session resumes", async () => {
        const root = fresh("overlap-resume");
        const clientId = uniqueId("overlap");
        const c = await subscribed(broker, [[`${root}/+`, 0], [`${root}/#`, 1]], { clientId, clean: false });
        await publish(broker, `${root}/x`, "once", 1);
        const got = await c.next("publish");
        expect(got.qos).toBe(1);
        const acked = broker.acked(clientId);
        c.send({ cmd: "puback", messageId: got.messageId! });
        await acked;
        await c.disconnect();
        const again = await broker.session({ clientId, clean: false });
        await again.nothing("publish");
      });

      test("[MQTT-3.3.5-1] [MQTT-3.1.2-5] a message queued for an offline session through two filters is delivered once, at the highest QoS", async () => {
        const root = fresh("overlap-offline");
        const clientId = uniqueId("overlap");
        const c = await subscribed(broker, [[`${root}/+`, 1], [`${root}/#`, 2]], { clientId, clean: false });
        await c.disconnect();
        await publish(broker, `${root}/x`, "queued", 2);
        const again = await broker.session({ clientId, clean: false });
        const got = await again.next("publish");
        expect([got.payload.toString(), got.qos]).toEqual(["queued", 2]);
        again.send({ cmd: "pubrec", messageId: got.messageId! });
        await again.next("pubrel");
        const acked = broker.acked(clientId);
        again.send({ cmd: "pubcomp", messageId: got.messageId! });
        await acked;
        await again.nothing("publish");
        await again.disconnect();
        const third = await broker.session({ clientId, clean: false });
        await third.nothing("publish");
      });
    });

    describe("session present", () => {
      test("[MQTT-3.2.2-2] a stored session without subscriptions: session present 1", async () => {
        const clientId = uniqueId("empty");
        const first = await broker.session({ clientId, clean: false });
        expect(first.connack.sessionPresent).toBe(false);
        await first.disconnect();
        const again = await broker.session({ clientId, clean: false });
        expect(again.connack.sessionPresent).toBe(true);
      });

      test("[MQTT-3.2.2-2] a session whose subscriptions were all removed is still present", async () => {
        const clientId = uniqueId("unsubscribed");
        const topic = fresh("present");
        const first = await broker.subscriber(topic, 1, { clientId, clean: false });
        first.send({ cmd: "unsubscribe", messageId: 2, unsubscriptions: [topic] });
        await first.next("unsuback");
        await first.disconnect();
        const again = await broker.session({ clientId, clean: false });
        expect(again.connack.sessionPresent).toBe(true);
        // It has no subscriptions.
        await publish(broker, topic, "not for it", 1);
        await again.nothing("publish");
      });

      test("[MQTT-3.2.2-2] what records a session cannot be subscribed to or unsubscribed by a client", async () => {
        const clientId = uniqueId("marker");
        await (await broker.session({ clientId, clean: false })).disconnect();
        for (const bytes of [frame(0x82, [0, 1], str(SESSION_FILTER), [0]), frame(0xa2, [0, 1], str(SESSION_FILTER))]) {
          const c = await broker.session({ clientId, clean: false });
          expect(c.connack.sessionPresent).toBe(true);
          c.sendBytes(bytes);
          await c.waitClosed();
          expect(c.received.map((p) => p.cmd)).toEqual(["connack"]);
        }
        expect((await broker.session({ clientId, clean: false })).connack.sessionPresent).toBe(true);
      });

      test("[MQTT-3.2.2-1] [MQTT-3.2.2-3] a clean session ends it: session present 0 after, for clean session 0 too", async () => {
        const clientId = uniqueId("ended");
        await (await broker.session({ clientId, clean: false })).disconnect();
        const clean = await broker.session({ clientId, clean: true });
        expect(clean.connack.sessionPresent).toBe(false);
        await clean.disconnect();
        const later = await broker.session({ clientId, clean: false });
        expect(later.connack.sessionPresent).toBe(false);
      });
    });

    describe("retained messages at QoS 1 and 2", () => {
      const levels: Array<[retained: 1 | 2, granted: 0 | 1 | 2, delivered: number]> = [
        [1, 0, 0],
        [1, 1, 1],
        [1, 2, 1],
        [2, 0, 0],
        [2, 1, 1],
        [2, 2, 2],
      ];
      for (const [retained, granted, delivered] of levels) {
        test(`[MQTT-3.8.4-6] [MQTT-3.3.1-6] a QoS ${retained} retained message on a QoS ${granted} subscription is delivered at QoS ${delivered} and completes`, async () => {
          for (const clean of [true, false]) {
            const topic = fresh("retained-qos");
            await publish(broker, topic, "kept", retained, true);
            const c = await broker.subscriberSettled(topic, granted, { clean, clientId: uniqueId("retained") });
            const got = await c.next("publish");
            expect([clean, got.payload.toString(), got.qos as number, got.retain]).toEqual([clean, "kept", delivered, true]);
            if (got.qos === 1) c.send({ cmd: "puback", messageId: got.messageId! });
            if (got.qos === 2) {
              c.send({ cmd: "pubrec", messageId: got.messageId! });
              expect((await c.next("pubrel")).messageId).toBe(got.messageId!);
              c.send({ cmd: "pubcomp", messageId: got.messageId! });
            }
            await c.nothing("publish");
            await c.disconnect();
          }
        });
      }

      test("[MQTT-4.4.0-1] [MQTT-3.3.1-1] an unacknowledged QoS 1 retained delivery is resent when the session resumes", async () => {
        const topic = fresh("retained-resend");
        const clientId = uniqueId("retained");
        await publish(broker, topic, "kept", 1, true);
        const c = await broker.subscriber(topic, 1, { clientId, clean: false });
        const got = await c.next("publish");
        expect([got.qos, got.retain]).toEqual([1, true]);
        // Written once queued and marked as sent (delivery.ts): nothing to wait for before the end.
        c.destroy();
        const again = await broker.session({ clientId, clean: false });
        const resent = await again.next("publish");
        expect([resent.payload.toString(), resent.messageId, resent.qos, resent.dup]).toEqual(["kept", got.messageId, 1, true]);
        const acked = broker.acked(clientId);
        again.send({ cmd: "puback", messageId: resent.messageId! });
        await acked;
        await again.disconnect();
        const third = await broker.session({ clientId, clean: false });
        await third.nothing("publish");
      });

      test("[MQTT-4.4.0-1] a QoS 2 retained delivery: its PUBREL is resent when the session resumes after PUBREC", async () => {
        const topic = fresh("retained-pubrel");
        const clientId = uniqueId("retained");
        await publish(broker, topic, "kept", 2, true);
        const c = await broker.subscriber(topic, 2, { clientId, clean: false });
        const got = await c.next("publish");
        expect([got.qos, got.retain]).toEqual([2, true]);
        c.send({ cmd: "pubrec", messageId: got.messageId! });
        expect((await c.next("pubrel")).messageId).toBe(got.messageId!);
        c.destroy();
        const again = await broker.session({ clientId, clean: false });
        expect((await again.next("pubrel")).messageId).toBe(got.messageId!);
        const acked = broker.acked(clientId);
        again.send({ cmd: "pubcomp", messageId: got.messageId! });
        await acked;
        await again.nothing("publish");
        await again.disconnect();
        const third = await broker.session({ clientId, clean: false });
        await third.nothing("pubrel");
      });
    });
  });
}

test("[MQTT-3.2.2-2] [MQTT-3.1.2-4] a session without subscriptions is still present after a restart (SQLite store)", async () => {
  using dir = tempDir("plinth-sessions");
  const data = { dir: dir.join("data") };
  const clientId = uniqueId("restart");
  const first = await boot({}, { data });
  try {
    const c = await rawSession(first.mqttUrl, { clientId, clean: false });
    expect(c.connack.sessionPresent).toBe(false);
    await c.disconnect();
  } finally {
    await first.stop();
  }
  const second = await boot({}, { data });
  try {
    const c = await rawSession(second.mqttUrl, { clientId, clean: false });
    expect(c.connack.sessionPresent).toBe(true);
    await c.disconnect();
  } finally {
    await second.stop();
  }
});
