/**
 * [MQTT-4.3.2-2] A QoS 1 PUBLISH acknowledged once stored (conformance/acks.ts), on a real aedes and
 * SQLite store (in memory), its clients on in-memory streams: no port.
 */
import { expect, test } from "bun:test";
import type { Aedes } from "aedes";
import { acknowledgeWhenStored } from "../../../../runtime/broker/conformance/acks";
import * as reports from "../../../helpers/broker-reports";
import { type Wire, connect, hold, subscribe, wireBrokers } from "../../../helpers/wire-broker";

const startBroker = wireBrokers();

/** The topics of the retained messages the store is asked to keep, from now on. */
function countRetained(aedes: Aedes): string[] {
  const store = (aedes as unknown as { persistence: { storeRetained(p: { topic: string }): Promise<void> } }).persistence;
  const original = store.storeRetained;
  const topics: string[] = [];
  store.storeRetained = (packet) => (topics.push(packet.topic), original.call(store, packet));
  return topics;
}

/** Publishes a message after the others from `pub` and waits until `sub` has it: what `pub` published before has reached `sub` by then. */
async function sentinel(pub: Wire, sub: Wire): Promise<void> {
  pub.send({ cmd: "publish", topic: "t/sentinel", payload: "", qos: 1, messageId: 999 });
  while (((await sub.next("publish")) as unknown as { topic: string }).topic !== "t/sentinel");
}

const topics = (wire: Wire) => wire.received.filter((p) => p.cmd === "publish").map((p) => (p as unknown as { topic: string }).topic);

test("[MQTT-4.3.2-2] a retained QoS 1 PUBLISH gets its PUBACK once the retained message is stored, and is published once", async () => {
  const aedes = await startBroker(acknowledgeWhenStored);
  const sub = await connect(aedes, "sub");
  await subscribe(sub, "t/#", 1);
  const pub = await connect(aedes, "pub");
  const store = hold(aedes, "storeRetained");
  const stored = countRetained(aedes);
  pub.send({ cmd: "publish", topic: "t/r", payload: "v", qos: 1, retain: true, messageId: 5 });
  await store.held;
  await pub.nothing("puback");
  store.release();
  expect((await pub.next("puback")).messageId).toBe(5);
  await sentinel(pub, sub);
  expect(topics(sub)).toEqual(["t/r", "t/sentinel"]);
  // aedes' own publish after the PUBACK would have stored the retained message again by then (it starts
  // as the PUBACK is written; the sentinel waits for a later commit).
  expect(stored).toEqual(["t/r"]);
});

test("[MQTT-4.3.2-2] a QoS 1 PUBLISH for an offline persistent session gets its PUBACK once queued for it", async () => {
  const aedes = await startBroker(acknowledgeWhenStored);
  const away = await connect(aedes, "away", false);
  await subscribe(away, "t/q", 1);
  away.send({ cmd: "disconnect" });
  await reports.disconnected(aedes, "away");
  const pub = await connect(aedes, "pub");
  const store = hold(aedes, "outgoingEnqueueCombi");
  pub.send({ cmd: "publish", topic: "t/q", payload: "keep", qos: 1, messageId: 6 });
  await store.held;
  await pub.nothing("puback");
  store.release();
  expect((await pub.next("puback")).messageId).toBe(6);
  const back = await connect(aedes, "away", false);
  expect(((await back.next("publish")) as unknown as { payload: Buffer }).payload.toString()).toBe("keep");
});

test("a QoS 1 PUBLISH with nothing to store (not retained, no persistent session) is acknowledged without waiting for the store", async () => {
  const aedes = await startBroker(acknowledgeWhenStored);
  const pub = await connect(aedes, "pub");
  const store = hold(aedes, "outgoingEnqueueCombi");
  pub.send({ cmd: "publish", topic: "t/plain", payload: "x", qos: 1, messageId: 7 });
  await store.held;
  expect((await pub.next("puback")).messageId).toBe(7);
  store.release();
});

test("[MQTT-4.3.2-2] a retained QoS 1 PUBLISH the store fails to keep is not acknowledged: the connection is closed", async () => {
  const aedes = await startBroker(acknowledgeWhenStored);
  const pub = await connect(aedes, "pub");
  const store = hold(aedes, "storeRetained", new Error("disk full"));
  pub.send({ cmd: "publish", topic: "t/r", payload: "v", qos: 1, retain: true, messageId: 8 });
  await store.held;
  store.release();
  await expect(pub.next("puback")).rejects.toThrow("closed before a puback");
});

test("[MQTT-4.3.2-2] the PUBACK waits for the store, not for the delivery: a subscriber still busy with the message does not hold it back", async () => {
  const aedes = await startBroker(acknowledgeWhenStored);
  let finish!: () => void;
  const busy = new Promise<void>((resolve) => aedes.subscribe("t/#", (_packet: unknown, done: () => void) => ((finish = done), resolve()), () => {}));
  const pub = await connect(aedes, "pub");
  pub.send({ cmd: "publish", topic: "t/r", payload: "v", qos: 1, retain: true, messageId: 9 });
  await busy;
  expect((await pub.next("puback")).messageId).toBe(9);
  finish();
});
