/**
 * [MQTT-3.8.4-4] [MQTT-3.8.4-5] [MQTT-3.9.3-1] One SUBACK return code per topic filter, duplicates
 * included (conformance/suback.ts), on a real aedes and SQLite store (in memory) with the conformance
 * rules installed (the guard hands a SUBSCRIBE to suback.ts), its clients on in-memory streams: no port.
 */
import { expect, test } from "bun:test";
import type { Aedes } from "aedes";
import { conformant } from "../../../../runtime/broker/conformance";
import { createLogger } from "../../../../runtime/log";
import * as reports from "../../../helpers/broker-reports";
import { type Publish, connect, wireBrokers } from "../../../helpers/wire-broker";

const startBroker = wireBrokers();

const install = (aedes: Aedes) => void conformant(aedes, { maxPacketBytes: 65_536 }, createLogger({ level: "silent" }));
type Suback = { messageId: number; granted: number[] };

test("[MQTT-3.8.4-4] [MQTT-3.8.4-5] a SUBSCRIBE naming a filter twice gets one SUBACK with a return code for each, and the last request is in effect", async () => {
  const aedes = await startBroker(install);
  const s = await connect(aedes, "s");
  s.send({ cmd: "subscribe", messageId: 12, subscriptions: [{ topic: "a", qos: 0 }, { topic: "b", qos: 1 }, { topic: "a", qos: 2 }] });
  const suback = (await s.next("suback")) as unknown as Suback;
  expect([suback.messageId, suback.granted]).toEqual([12, [0, 1, 2]]);
  const pub = await connect(aedes, "pub");
  const done = reports.published(aedes, (p) => p.topic === "a");
  pub.send({ cmd: "publish", topic: "a", payload: "x", qos: 2, messageId: 1 });
  await done;
  expect(((await s.next("publish")) as Publish).qos).toBe(2);
  await s.nothing("suback");
});

test("[MQTT-3.9.3-1] a refused filter named twice gets 0x80 each time; a SUBSCRIBE without duplicates keeps aedes' own SUBACK", async () => {
  const aedes = await startBroker((a) => {
    install(a);
    const authorize = a.authorizeSubscribe;
    a.authorizeSubscribe = function (client, sub, callback) {
      if (sub.topic === "no") return callback(null, null);
      authorize.call(this, client, sub, callback);
    };
  });
  const s = await connect(aedes, "s");
  s.send({ cmd: "subscribe", messageId: 5, subscriptions: [{ topic: "no", qos: 1 }, { topic: "ok", qos: 1 }, { topic: "no", qos: 0 }] });
  expect(((await s.next("suback")) as unknown as Suback).granted).toEqual([0x80, 1, 0x80]);
  s.send({ cmd: "subscribe", messageId: 6, subscriptions: [{ topic: "x", qos: 1 }, { topic: "no", qos: 1 }] });
  const plain = (await s.next("suback")) as unknown as Suback;
  expect([plain.messageId, plain.granted]).toEqual([6, [1, 0x80]]);
  await s.nothing("suback");
});

test("the SUBACKs of several SUBSCRIBEs with duplicates go to their own client, with their own packet identifiers", async () => {
  const aedes = await startBroker(install);
  const [s1, s2] = [await connect(aedes, "s1"), await connect(aedes, "s2")];
  s1.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "a", qos: 1 }, { topic: "a", qos: 1 }] });
  s2.send({ cmd: "subscribe", messageId: 2, subscriptions: [{ topic: "b", qos: 0 }, { topic: "b", qos: 0 }, { topic: "c", qos: 2 }] });
  s1.send({ cmd: "subscribe", messageId: 3, subscriptions: [{ topic: "d", qos: 2 }, { topic: "d", qos: 0 }] });
  const got1 = [(await s1.next("suback")) as unknown as Suback, (await s1.next("suback")) as unknown as Suback].sort((x, y) => x.messageId - y.messageId);
  const got2 = (await s2.next("suback")) as unknown as Suback;
  expect(got1.map((x) => [x.messageId, x.granted])).toEqual([[1, [1, 1]], [3, [2, 0]]]);
  expect([got2.messageId, got2.granted]).toEqual([2, [0, 0, 2]]);
  await s1.nothing("suback");
  await s2.nothing("suback");
});
