/**
 * [MQTT-3.2.2-2] [MQTT-3.1.2-4] A persistent session exists without subscriptions
 * (conformance/sessions.ts), on a real aedes and SQLite store (in memory), its clients on in-memory
 * streams: no port. Only sessions.ts is installed, so what differs from aedes is its doing.
 */
import { expect, test } from "bun:test";
import type { Aedes } from "aedes";
import { recordSessions, SESSION_FILTER } from "../../../../runtime/broker/conformance/sessions";
import * as reports from "../../../helpers/broker-reports";
import { type Wire, connect, leave, wireBrokers } from "../../../helpers/wire-broker";

const startBroker = wireBrokers();

const present = (wire: Wire) => wire.connack.sessionPresent;

test("[MQTT-3.2.2-2] a persistent session without subscriptions is present when the client comes back", async () => {
  const aedes = await startBroker(recordSessions);
  const first = await connect(aedes, "s", false);
  expect(present(first)).toBe(false);
  await leave(aedes, first, "s");
  const again = await connect(aedes, "s", false);
  expect(present(again)).toBe(true);
});

test("[MQTT-3.1.2-6] [MQTT-3.2.2-1] a clean session ends it: the next persistent one starts afresh", async () => {
  const aedes = await startBroker(recordSessions);
  await leave(aedes, await connect(aedes, "s", false), "s");
  const clean = await connect(aedes, "s", true);
  expect(present(clean)).toBe(false);
  await leave(aedes, clean, "s");
  expect(present(await connect(aedes, "s", false))).toBe(false);
});

test("the record is never a subscription: no message on its filter reaches the session, and a client cannot subscribe to it", async () => {
  const aedes = await startBroker(recordSessions);
  await leave(aedes, await connect(aedes, "s", false), "s");
  const s = await connect(aedes, "s", false);
  expect(present(s)).toBe(true);
  const pub = await connect(aedes, "pub");
  const done = reports.published(aedes, (p) => p.topic === SESSION_FILTER);
  pub.send({ cmd: "publish", topic: SESSION_FILTER, payload: "x", qos: 0 });
  await done;
  await s.nothing("publish");
  s.send({ cmd: "subscribe", messageId: 3, subscriptions: [{ topic: SESSION_FILTER, qos: 0 }, { topic: "t", qos: 1 }] });
  expect(((await s.next("suback")) as unknown as { granted: number[] }).granted).toEqual([0x80, 1]);
});
