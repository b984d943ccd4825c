/**
 * Rules on the session store (conformance/store.ts), on a real aedes and SQLite store (in memory), its
 * clients on in-memory streams: no port. Only store.ts is installed, so what differs from aedes is its doing.
 */
import { expect, test } from "bun:test";
import type { Aedes } from "aedes";
import { wrapStore } from "../../../../runtime/broker/conformance/store";
import { type Wire, type Publish, connect, leave, subscribe, wireBrokers } from "../../../helpers/wire-broker";

const startBroker = wireBrokers();

test("[MQTT-3.3.1-1] [MQTT-3.3.1-3] a PUBLISH sent again when the session resumes has DUP 1; one queued while the client was away goes first with DUP 0", async () => {
  const aedes = await startBroker(wrapStore);
  const s = await connect(aedes, "s", false);
  await subscribe(s, "t", 1);
  const pub = await connect(aedes, "pub");
  pub.send({ cmd: "publish", topic: "t", payload: "sent", qos: 1, messageId: 1 });
  const sent = (await s.next("publish")) as Publish;
  expect(sent.dup).toBe(false);
  await leave(aedes, s, "s");
  pub.send({ cmd: "publish", topic: "t", payload: "queued", qos: 1, messageId: 2 });
  await pub.next("puback");
  await pub.next("puback");
  const back = await connect(aedes, "s", false);
  const got = [(await back.next("publish")) as Publish, (await back.next("publish")) as Publish];
  expect(got.map((p) => [p.payload.toString(), p.dup])).toEqual([["sent", true], ["queued", false]]);
  expect(got[0]!.messageId).toBe(sent.messageId);
});

test("[MQTT-2.3.1-4] a resumed session's new PUBLISH packets get identifiers its unacknowledged ones do not use", async () => {
  const aedes = await startBroker(wrapStore);
  const s = await connect(aedes, "s", false);
  await subscribe(s, "t", 1);
  const pub = await connect(aedes, "pub");
  pub.send({ cmd: "publish", topic: "t", payload: "a", qos: 1, messageId: 1 });
  const unacknowledged = (await s.next("publish")) as Publish;
  await leave(aedes, s, "s");
  // The next connection's numbering starts (aedes starts it at random) on the identifier in use.
  const random = Math.random;
  Math.random = () => (unacknowledged.messageId! - 0.5) / 65535;
  let back: Wire;
  try {
    back = await connect(aedes, "s", false);
  } finally {
    Math.random = random;
  }
  const resent = (await back.next("publish")) as Publish;
  pub.send({ cmd: "publish", topic: "t", payload: "b", qos: 1, messageId: 2 });
  const fresh = (await back.next("publish")) as Publish;
  expect([resent.payload.toString(), resent.messageId]).toEqual(["a", unacknowledged.messageId]);
  expect(fresh.payload.toString()).toBe("b");
  expect(fresh.messageId).not.toBe(unacknowledged.messageId);
});

/** aedes' own in-memory store (aedes-persistence), whose retained messages match `#` to `$` topics too. */
const AedesMemory = require("aedes-persistence/asyncPersistence.js") as new () => { destroy(): Promise<void> };

test("[MQTT-4.7.2-1] a retained message on a `$` topic is sent for a filter naming `$`, not for one starting with a wildcard, whatever the store matches", async () => {
  const aedes = await startBroker(wrapStore, new AedesMemory());
  const pub = await connect(aedes, "pub");
  for (const [topic, id] of [["$app/x", 1], ["app/x", 2]] as const) {
    pub.send({ cmd: "publish", topic, payload: topic, qos: 1, retain: true, messageId: id });
    await pub.next("puback");
  }
  const wild = await connect(aedes, "wild");
  wild.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "#", qos: 0 }] });
  await wild.next("suback");
  const plus = await connect(aedes, "plus");
  plus.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "+/x", qos: 0 }] });
  await plus.next("suback");
  const named = await connect(aedes, "named");
  named.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "$app/#", qos: 0 }] });
  await named.next("suback");
  expect(((await named.next("publish")) as Publish).topic).toBe("$app/x");
  expect(((await wild.next("publish")) as Publish).topic).toBe("app/x");
  expect(((await plus.next("publish")) as Publish).topic).toBe("app/x");
  // The retained messages of one SUBSCRIBE are sent in one go: "app/x" came, "$app/x" would have by now.
  await wild.nothing("publish");
  await plus.nothing("publish");
});
