/**
 * [MQTT-3.8.4-4] [MQTT-3.8.4-5] [MQTT-3.9.3-1] One SUBACK return code per topic filter, duplicates
 * included (conformance/suback.ts), on a real aedes and SQLite store (in memory) with the conformance
 * rules installed (the guard hands a SUBSCRIBE to suback.ts), its clients on in-memory streams: no port.
 */
import { afterEach, expect, test } from "bun:test";
import { duplexPair } from "node:stream";
import { Aedes } from "aedes";
import mqttPacket, { type Packet } from "mqtt-packet";
import { conformant } from "../../../runtime/broker/conformance";
import { Emitter } from "../../../runtime/broker/emitter";
import { SqlitePersistence } from "../../../runtime/broker/persistence/sqlite";
import { createLogger } from "../../../runtime/log";
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

type Publish = Packet & { topic: string; qos: number; payload: Buffer; messageId?: number; retain: boolean; dup: boolean };
const publishes = (wire: Wire) => wire.received.filter((p) => p.cmd === "publish") as Publish[];

/** Ends a persistent session's connection (DISCONNECT) once the broker has let go of it. */
async function leave(aedes: Aedes, wire: Wire, clientId: string): Promise<void> {
  const gone = reports.disconnected(aedes, clientId);
  wire.send({ cmd: "disconnect" });
  await gone;
}

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
