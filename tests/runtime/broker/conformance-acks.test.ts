/**
 * [MQTT-4.3.2-2] A QoS 1 PUBLISH acknowledged once stored (conformance/acks.ts), on a real aedes and
 * SQLite store (in memory), its clients on in-memory streams: no port.
 */
import { afterEach, expect, test } from "bun:test";
import { duplexPair } from "node:stream";
import { Aedes } from "aedes";
import mqttPacket, { type Packet } from "mqtt-packet";
import { acknowledgeWhenStored } from "../../../runtime/broker/conformance/acks";
import { Emitter } from "../../../runtime/broker/emitter";
import { SqlitePersistence } from "../../../runtime/broker/persistence/sqlite";
import * as reports from "../../helpers/broker-reports";

// --- a broker and raw clients over in-memory streams ---
const brokers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of brokers.splice(0)) await close();
});

async function startBroker(install: (aedes: Aedes) => void): Promise<Aedes> {
  const persistence = new SqlitePersistence({ file: ":memory:" });
  const aedes = await Aedes.createBroker({ persistence: persistence as never, mq: new Emitter() as never });
  install(aedes);
  brokers.push(async () => {
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    await persistence.destroy();
  });
  return aedes;
}

interface Wire {
  received: Packet[];
  closed: boolean;
  send(packet: Record<string, unknown>): void;
  /** The next packet of this type not taken yet. */
  next(cmd: Packet["cmd"]): Promise<Packet & Record<string, never>>;
  /** Fails if a packet of this type arrived before the answer to a PINGREQ sent now. */
  nothing(cmd: Packet["cmd"]): Promise<void>;
  /** Closes the connection without DISCONNECT. */
  destroy(): void;
}

async function connect(aedes: Aedes, clientId: string, clean = true): Promise<Wire> {
  const [peer, conn] = duplexPair();
  aedes.handle(conn as never);
  const parser = mqttPacket.parser();
  const received: Packet[] = [];
  const taken = new Set<Packet>();
  const waiting = new Set<() => void>();
  const wake = () => waiting.forEach((w) => w());
  parser.on("packet", (p: Packet) => (received.push(p), wake()));
  peer.on("data", (b: Buffer) => parser.parse(b));
  const wire: Wire = {
    received,
    closed: false,
    send: (p) => void peer.write(mqttPacket.generate(p as unknown as Packet)),
    next: (cmd) =>
      new Promise((resolve, reject) => {
        const look = () => {
          const p = received.find((r) => r.cmd === cmd && !taken.has(r));
          if (p) return waiting.delete(look), clearTimeout(timer), taken.add(p), resolve(p as never);
          if (wire.closed) return waiting.delete(look), clearTimeout(timer), reject(new Error(`closed before a ${cmd}`));
        };
        const timer = setTimeout(() => (waiting.delete(look), reject(new Error(`no ${cmd}`))), 3_000);
        waiting.add(look);
        look();
      }),
    async nothing(cmd) {
      wire.send({ cmd: "pingreq" });
      await wire.next("pingresp");
      expect(received.filter((p) => p.cmd === cmd && !taken.has(p))).toEqual([]);
    },
    destroy: () => void peer.destroy(),
  };
  peer.on("close", () => ((wire.closed = true), wake()));
  wire.send({ cmd: "connect", protocolId: "MQTT", protocolVersion: 4, clean, clientId, keepalive: 0 });
  await wire.next("connack");
  return wire;
}

/**
 * Holds the store's `method` (failing it with `fail` if given) until release(); `held` resolves once it
 * was called. restore() puts the method back for later calls (those held still wait).
 */
function hold(aedes: Aedes, method: string, fail?: Error) {
  const store = (aedes as unknown as { persistence: Record<string, (...a: unknown[]) => Promise<unknown>> }).persistence;
  const original = store[method]!;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let called!: () => void;
  const held = new Promise<void>((r) => (called = r));
  store[method] = (...args) => (called(), gate.then(() => (fail ? Promise.reject(fail) : original.apply(store, args))));
  return { held, release, restore: () => void (store[method] = original) };
}

async function subscribe(wire: Wire, topic: string, qos: 0 | 1): Promise<void> {
  wire.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic, qos }] });
  await wire.next("suback");
}
// ---

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
