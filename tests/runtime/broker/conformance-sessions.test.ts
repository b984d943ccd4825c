/**
 * [MQTT-3.2.2-2] [MQTT-3.1.2-4] A persistent session exists without subscriptions
 * (conformance/sessions.ts), on a real aedes and SQLite store (in memory), its clients on in-memory
 * streams: no port. Only sessions.ts is installed, so what differs from aedes is its doing.
 */
import { afterEach, expect, test } from "bun:test";
import { duplexPair } from "node:stream";
import { Aedes } from "aedes";
import mqttPacket, { type Packet } from "mqtt-packet";
import { recordSessions, SESSION_FILTER } from "../../../runtime/broker/conformance/sessions";
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
  connacks.set(wire, (await wire.next("connack")) as never);
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

const connacks = new WeakMap<Wire, { sessionPresent: boolean; returnCode: number }>();
const present = (wire: Wire) => connacks.get(wire)!.sessionPresent;

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
