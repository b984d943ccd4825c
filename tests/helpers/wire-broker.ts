/**
 * An embedded broker for unit tests of the conformance rules: a real aedes on the real SQLite store
 * (in memory) with only the rules a test installs, its clients raw MQTT (raw-mqtt.ts) over in-memory
 * streams (`duplexPair()`): no port.
 */
import { afterEach } from "bun:test";
import { type Duplex, duplexPair } from "node:stream";
import { Aedes } from "aedes";
import type { Packet } from "mqtt-packet";
import { Emitter } from "../../runtime/broker/emitter";
import { SqlitePersistence } from "../../runtime/broker/persistence/sqlite";
import * as reports from "./broker-reports";
import { type RawSession, rawClient } from "./raw-mqtt";

/** A client connected over an in-memory stream (its CONNACK kept, accepted or not). */
export type Wire = RawSession<Duplex>;

/** A PUBLISH as a client receives it. */
export type Publish = Packet & { topic: string; qos: number; payload: Buffer; messageId?: number; retain: boolean; dup: boolean };

/** A store the broker can be started on: the SQLite one unless a test gives its own. */
export interface Store {
  destroy(): Promise<void>;
}

/**
 * Returns a function that starts a broker (aedes on the SQLite store in memory, or `persistence`),
 * with `install` applied before any client connects; each is closed, its store destroyed, after the
 * test that started it. Call at the top of a test file.
 */
export function wireBrokers(): (install: (aedes: Aedes) => void, persistence?: Store) => Promise<Aedes> {
  const brokers: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const close of brokers.splice(0)) await close();
  });
  return async (install, persistence = new SqlitePersistence({ file: ":memory:" })) => {
    const aedes = await Aedes.createBroker({ persistence: persistence as never, mq: new Emitter() as never });
    install(aedes);
    brokers.push(async () => {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await persistence.destroy();
    });
    return aedes;
  };
}

/** Connects a client to `aedes` over an in-memory stream: CONNECT (keep-alive 0), resolved at its CONNACK. */
export async function connect(aedes: Aedes, clientId: string, clean = true): Promise<Wire> {
  const [peer, conn] = duplexPair();
  aedes.handle(conn as never);
  const client = rawClient<Duplex>(peer);
  const connack = await client.connect({ clientId, clean });
  return Object.assign(client, { connack, clientId });
}

/** Subscribes to one filter and waits for the SUBACK. */
export async function subscribe(wire: Wire, topic: string, qos: 0 | 1): Promise<void> {
  wire.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic, qos }] });
  await wire.next("suback");
}

/** Ends a persistent session's connection (DISCONNECT) once the broker has let go of it. */
export async function leave(aedes: Aedes, wire: Wire, clientId: string): Promise<void> {
  const gone = reports.disconnected(aedes, clientId);
  wire.send({ cmd: "disconnect" });
  await gone;
}

/** Every PUBLISH the client received so far, taken or not. */
export const publishes = (wire: Wire) => wire.received.filter((p) => p.cmd === "publish") as Publish[];

/**
 * Holds the store's `method` (failing it with `fail` if given) until release(); `held` resolves once it
 * was called. restore() puts the method back for later calls (those held still wait).
 */
export function hold(aedes: Aedes, method: string, fail?: Error) {
  const store = (aedes as unknown as { persistence: Record<string, (...a: unknown[]) => Promise<unknown>> }).persistence;
  const original = store[method]!;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let called!: () => void;
  const held = new Promise<void>((r) => (called = r));
  store[method] = (...args) => (called(), gate.then(() => (fail ? Promise.reject(fail) : original.apply(store, args))));
  return { held, release, restore: () => void (store[method] = original) };
}
