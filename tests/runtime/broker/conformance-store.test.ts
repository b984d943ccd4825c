/**
 * Rules on the session store (conformance/store.ts), on a real aedes and SQLite store (in memory), its
 * clients on in-memory streams: no port. Only store.ts is installed, so what differs from aedes is its doing.
 */
import { afterEach, expect, test } from "bun:test";
import { duplexPair } from "node:stream";
import { Aedes } from "aedes";
import mqttPacket, { type Packet } from "mqtt-packet";
import { wrapStore } from "../../../runtime/broker/conformance/store";
import { Emitter } from "../../../runtime/broker/emitter";
import { SqlitePersistence } from "../../../runtime/broker/persistence/sqlite";
import * as reports from "../../helpers/broker-reports";

// --- a broker and raw clients over in-memory streams ---
const brokers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of brokers.splice(0)) await close();
});

async function startBroker(install: (aedes: Aedes) => void, persistence: { destroy(): Promise<void> } = new SqlitePersistence({ file: ":memory:" })): Promise<Aedes> {
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

type Publish = Packet & { topic: string; qos: number; payload: Buffer; messageId?: number; retain: boolean; dup: boolean };
const publishes = (wire: Wire) => wire.received.filter((p) => p.cmd === "publish") as Publish[];

/** Ends a persistent session's connection (DISCONNECT) once the broker has let go of it. */
async function leave(aedes: Aedes, wire: Wire, clientId: string): Promise<void> {
  const gone = reports.disconnected(aedes, clientId);
  wire.send({ cmd: "disconnect" });
  await gone;
}

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
