/**
 * What a client is delivered (conformance/delivery.ts), on a real aedes and SQLite store (in memory),
 * its clients on in-memory streams: no port. Only delivery.ts is installed, so what differs from aedes
 * is its doing.
 */
import { expect, test } from "bun:test";
import type { Aedes } from "aedes";
import { capForwardedQoS, deliverOnce } from "../../../../runtime/broker/conformance/delivery";
import * as reports from "../../../helpers/broker-reports";
import { type Wire, type Publish, connect, hold, publishes, wireBrokers } from "../../../helpers/wire-broker";

const startBroker = wireBrokers();

/** delivery.ts as index.ts installs it: each connection's delivery functions, and the authorizeForward hook. */
function withDelivery(aedes: Aedes): void {
  const handle = aedes.handle.bind(aedes);
  aedes.handle = (conn, req) => {
    const client = handle(conn, req);
    deliverOnce(aedes, client);
    return client;
  };
  capForwardedQoS(aedes);
}

let messageId = 0;

/** Publishes from `pub` (a new packet identifier each time) and waits until the broker has delivered it to every subscriber. */
async function publish(aedes: Aedes, pub: Wire, topic: string, qos: 0 | 1 | 2, retain = false): Promise<void> {
  const done = reports.published(aedes, (p) => p.topic === topic);
  pub.send({ cmd: "publish", topic, payload: topic, qos, retain, messageId: qos ? ++messageId : undefined });
  await done;
}

test("[MQTT-3.3.5-1] overlapping subscriptions get one copy, at the highest QoS among them, whichever filter is exact", async () => {
  const aedes = await startBroker(withDelivery);
  const sub = await connect(aedes, "sub");
  sub.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "a/x", qos: 0 }, { topic: "a/#", qos: 1 }, { topic: "b/+", qos: 0 }, { topic: "b/#", qos: 2 }, { topic: "c/#", qos: 0 }, { topic: "c/+", qos: 0 }] });
  await sub.next("suback");
  const pub = await connect(aedes, "pub");
  await publish(aedes, pub, "a/x", 1);
  await publish(aedes, pub, "b/y", 2);
  await publish(aedes, pub, "c/z", 0);
  await publish(aedes, pub, "a/x", 0);
  // [MQTT-3.8.4-6] never above the QoS granted.
  await publish(aedes, pub, "a/y", 2);
  await publish(aedes, pub, "c/z", 1);
  await sub.nothing("pingresp");
  expect(publishes(sub).map((p) => [p.topic, p.qos])).toEqual([["a/x", 1], ["b/y", 2], ["c/z", 0], ["a/x", 0], ["a/y", 1], ["c/z", 0]]);
});

test("[MQTT-4.3.2-2] a message that waited for the store still reaches a client another message, numbered after it, reached first", async () => {
  const aedes = await startBroker(withDelivery);
  const sub = await connect(aedes, "sub");
  sub.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "t/#", qos: 1 }, { topic: "t/+", qos: 1 }] });
  await sub.next("suback");
  const pub = await connect(aedes, "pub");
  for (const [waiting, overtaking] of [[1, 0], [1, 1], [0, 1], [0, 0]] as const) {
    const store = hold(aedes, "storeRetained");
    const waited = reports.published(aedes, (p) => p.topic === `t/${waiting}${overtaking}/retained`);
    pub.send({ cmd: "publish", topic: `t/${waiting}${overtaking}/retained`, payload: "", qos: waiting, retain: true, messageId: waiting ? 1 : undefined });
    await store.held;
    store.restore();
    await publish(aedes, pub, `t/${waiting}${overtaking}/live`, overtaking);
    store.release();
    await waited;
  }
  await sub.nothing("pingresp");
  expect(publishes(sub).map((p) => [p.topic, p.qos])).toEqual([
    ["t/10/live", 0], ["t/10/retained", 1],
    ["t/11/live", 1], ["t/11/retained", 1],
    ["t/01/live", 1], ["t/01/retained", 0],
    ["t/00/live", 0], ["t/00/retained", 0],
  ]);
});

test("[MQTT-3.8.4-6] what a persistent session had queued is sent at no more than the QoS its subscription grants", async () => {
  const aedes = await startBroker(withDelivery);
  const away = await connect(aedes, "away", false);
  away.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "q", qos: 1 }] });
  await away.next("suback");
  away.send({ cmd: "disconnect" });
  await reports.disconnected(aedes, "away");
  const pub = await connect(aedes, "pub");
  pub.send({ cmd: "publish", topic: "q", payload: "two", qos: 2, messageId: 3 });
  await pub.next("pubrec");
  const back = await connect(aedes, "away", false);
  const got = await back.next("publish");
  expect([(got as Publish).payload.toString(), (got as Publish).qos]).toEqual(["two", 1]);
});

test("[MQTT-4.4.0-1] a retained QoS 1 message sent on SUBSCRIBE to a persistent session is sent again when it resumes unacknowledged, and not once acknowledged", async () => {
  const aedes = await startBroker(withDelivery);
  const pub = await connect(aedes, "pub");
  pub.send({ cmd: "publish", topic: "r", payload: "kept", qos: 1, retain: true, messageId: 4 });
  await pub.next("puback");
  const first = await connect(aedes, "s", false);
  first.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "r", qos: 1 }] });
  const sent = (await first.next("publish")) as Publish;
  expect([sent.payload.toString(), sent.qos, sent.retain]).toEqual(["kept", 1, true]);
  first.send({ cmd: "disconnect" });
  await reports.disconnected(aedes, "s");
  const second = await connect(aedes, "s", false);
  const again = (await second.next("publish")) as Publish;
  expect([again.payload.toString(), again.messageId]).toEqual(["kept", sent.messageId]);
  const acked = reports.acked(aedes, "s");
  second.send({ cmd: "puback", messageId: again.messageId });
  await acked;
  second.send({ cmd: "disconnect" });
  await reports.disconnected(aedes, "s");
  const third = await connect(aedes, "s", false);
  await third.nothing("publish");
});

test("a message the authorizeForward hook refuses to a persistent session is not sent, nor kept in its queue for later", async () => {
  const aedes = await startBroker(withDelivery);
  const forward = aedes.authorizeForward;
  let refusing = true;
  aedes.authorizeForward = function (client, packet) {
    return refusing && packet.topic === "no" ? null : forward.call(this, client, packet);
  };
  const s = await connect(aedes, "s", false);
  s.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "#", qos: 1 }] });
  await s.next("suback");
  const pub = await connect(aedes, "pub");
  await publish(aedes, pub, "no", 1);
  await publish(aedes, pub, "yes", 1);
  // A QoS 0 message to a persistent session is sent as it is: nothing of it is queued.
  await publish(aedes, pub, "zero", 0);
  await s.nothing("pingresp");
  expect(publishes(s).map((p) => [p.topic, p.qos])).toEqual([["yes", 1], ["zero", 0]]);
  s.destroy();
  refusing = false;
  await reports.disconnected(aedes, "s");
  const back = await connect(aedes, "s", false);
  const resent = (await back.next("publish")) as Publish;
  expect(resent.topic).toBe("yes");
  await back.nothing("publish");
});
