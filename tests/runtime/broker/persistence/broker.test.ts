/**
 * The broker (aedes) on its SQLite persistence, restarted on the same data
 * folder, with MQTT.js clients (and raw MQTT packets where a handshake must
 * stop halfway) over TCP: persistent sessions, retained messages, QoS 2 state
 * and wills outlive the broker.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { createConnection, createServer, type Socket } from "node:net";
import { Aedes } from "aedes";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import mqttPacket, { type Packet } from "mqtt-packet";
import type { Config } from "../../../../config/schema";
import { startBroker, type Broker } from "../../../../runtime/broker/broker";
import { BROKER_DB_FILE } from "../../../../runtime/broker/persistence";
import { brokerConfig } from "../../../helpers/broker-config";
import { SqlitePersistence } from "../../../../runtime/broker/persistence/sqlite";
import { createLogger } from "../../../../runtime/log";
import * as reports from "../../../helpers/broker-reports";
import { eventually, roundTrip } from "../../../helpers/mqtt";
import { tempDir } from "../../../helpers/tmp";

const dir = tempDir("plinth-broker-restart");
const open: MqttClient[] = [];
afterAll(async () => {
  await Promise.all(open.map((c) => c.endAsync(true).catch(() => {})));
  dir[Symbol.dispose]();
});

const start = (dataDir: string, overrides?: Partial<Config["broker"]>) =>
  startBroker(brokerConfig(overrides), createLogger({ level: "silent" }), { dataDir });
const url = (broker: Broker) => `mqtt://127.0.0.1:${broker.port}`;

interface Session {
  client: MqttClient;
  sessionPresent: boolean;
  messages: Array<{ topic: string; payload: string; qos: number }>;
}

/** Connects with the message listener in place before CONNACK, so queued messages sent right after it are seen. */
function connect(broker: Broker, options: IClientOptions): Promise<Session> {
  const client = mqtt.connect(url(broker), { reconnectPeriod: 0, connectTimeout: 5_000, ...options });
  open.push(client);
  const messages: Session["messages"] = [];
  client.on("message", (topic, payload, packet) => messages.push({ topic, payload: payload.toString(), qos: packet.qos }));
  return new Promise((resolve, reject) => {
    client.once("connect", (connack) => resolve({ client, sessionPresent: connack.sessionPresent, messages }));
    client.once("error", reject);
  });
}

async function publish(broker: Broker, messages: Array<[topic: string, payload: string, qos: 0 | 1 | 2, retain?: boolean]>) {
  const c = await mqtt.connectAsync(url(broker), { reconnectPeriod: 0 });
  for (const [topic, payload, qos, retain = false] of messages) await c.publishAsync(topic, payload, { qos, retain });
  await c.endAsync();
}

test("a persistent session, its subscriptions and the messages queued while it was away outlive the broker", async () => {
  const data = dir.join("session");
  let broker = await start(data);
  expect(existsSync(dir.join("session", BROKER_DB_FILE))).toBe(true);
  const first = await connect(broker, { clientId: "dev-1", clean: false });
  expect(first.sessionPresent).toBe(false);
  await first.client.subscribeAsync("fleet/+/cmd", { qos: 1 });
  await first.client.endAsync();

  await publish(broker, [
    ["fleet/a/cmd", "one", 1],
    ["fleet/b/cmd", "two", 2],
    ["fleet/c/cmd", "three", 1],
    ["rooms/1/temp", "21.5", 1, true],
    ["other/topic", "not for dev-1", 1],
  ]);
  await broker.close();

  broker = await start(data);
  const allAcked = reports.acked(broker.aedes, "dev-1", 4); // one, two, three, live: MQTT.js acknowledges each
  const again = await connect(broker, { clientId: "dev-1", clean: false });
  // [MQTT-3.2.2-2] the session was found; its subscription is back without a new SUBSCRIBE.
  expect(again.sessionPresent).toBe(true);
  await eventually(() => again.messages.length >= 3);
  expect(again.messages).toEqual([
    { topic: "fleet/a/cmd", payload: "one", qos: 1 },
    { topic: "fleet/b/cmd", payload: "two", qos: 1 },
    { topic: "fleet/c/cmd", payload: "three", qos: 1 },
  ]);
  await publish(broker, [["fleet/d/cmd", "live", 1]]);
  await eventually(() => again.messages.some((m) => m.payload === "live"));

  // [MQTT-3.3.1-6] a new subscription gets the retained message kept before the restart.
  const reader = await connect(broker, { clientId: "reader", clean: true });
  await reader.client.subscribeAsync("rooms/#", { qos: 1 });
  await eventually(() => reader.messages.length === 1);
  expect(reader.messages[0]).toMatchObject({ topic: "rooms/1/temp", payload: "21.5" });

  // Acknowledged messages are gone from the queue: the next restart delivers nothing again.
  await allAcked;
  await again.client.endAsync();
  await reader.client.endAsync();
  await broker.close();
  broker = await start(data);
  const thirdReady = reports.ready(broker.aedes, "dev-1");
  const third = await connect(broker, { clientId: "dev-1", clean: false });
  expect(third.sessionPresent).toBe(true);
  await thirdReady; // its queue sent
  await roundTrip(third.client);
  expect(third.messages).toEqual([]);

  // [MQTT-3.1.2-6] a clean session discards the stored one.
  await third.client.endAsync();
  const cleaned = await connect(broker, { clientId: "dev-1", clean: true });
  await cleaned.client.endAsync();
  const fresh = await connect(broker, { clientId: "dev-1", clean: false });
  expect(fresh.sessionPresent).toBe(false);
  await fresh.client.endAsync();
  await broker.close();
});

test("maxQueuedPerClient keeps the newest messages of an offline session and counts the dropped ones", async () => {
  const data = dir.join("bounded");
  let broker = await start(data, { maxQueuedPerClient: 2 });
  const first = await connect(broker, { clientId: "slow", clean: false });
  await first.client.subscribeAsync("news", { qos: 1 });
  await first.client.endAsync();
  await publish(broker, [1, 2, 3, 4, 5].map((i) => ["news", `n${i}`, 1] as [string, string, 1]));
  const persistence = (broker.aedes as unknown as { persistence: SqlitePersistence }).persistence;
  expect(persistence.droppedMessages()).toBe(3);
  await broker.close();

  broker = await start(data, { maxQueuedPerClient: 2 });
  const ready = reports.ready(broker.aedes, "slow");
  const again = await connect(broker, { clientId: "slow", clean: false });
  await ready; // its queue sent
  await roundTrip(again.client);
  expect(again.messages.map((m) => m.payload)).toEqual(["n4", "n5"]);
  await again.client.endAsync();
  await broker.close();
});

test('broker.persistence "memory" writes no file', async () => {
  const data = dir.join("memory");
  const broker = await start(data, { persistence: "memory" });
  await publish(broker, [["kept/nowhere", "x", 1, true]]);
  await broker.close();
  expect(existsSync(dir.join("memory", BROKER_DB_FILE))).toBe(false);
});

/** A client speaking raw MQTT packets, to stop a QoS 2 handshake halfway. */
async function rawClient(broker: Broker, clientId: string) {
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s = createConnection(broker.port, "127.0.0.1", () => resolve(s));
    s.once("error", reject);
  });
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const seen: Packet[] = [];
  parser.on("packet", (p: Packet) => seen.push(p));
  socket.on("data", (chunk: Buffer) => parser.parse(chunk));
  const send = (p: object) => socket.write(mqttPacket.generate(p as Packet));
  const next = async (cmd: string, from = 0) => {
    await eventually(() => seen.slice(from).some((p) => p.cmd === cmd));
    return seen.slice(from).find((p) => p.cmd === cmd)! as Packet & { messageId?: number; sessionPresent?: boolean };
  };
  send({ cmd: "connect", protocolId: "MQTT", protocolVersion: 4, clean: false, clientId, keepalive: 60 });
  const connack = await next("connack");
  /** A PINGREQ and its PINGRESP: all the broker wrote before it handled the PINGREQ has arrived. */
  const roundTrip = async () => {
    const from = seen.length;
    send({ cmd: "pingreq" });
    await next("pingresp", from);
  };
  return { seen, send, next, roundTrip, sessionPresent: !!connack.sessionPresent, close: () => socket.destroy() };
}

test("[MQTT-4.3.3-2] a QoS 2 PUBLISH received before a restart is not delivered again when resent after it", async () => {
  const data = dir.join("qos2-in");
  let broker = await start(data);
  const listener = await connect(broker, { clientId: "listener", clean: false });
  await listener.client.subscribeAsync("once", { qos: 2 });

  const publisher = await rawClient(broker, "qos2-publisher");
  publisher.send({ cmd: "publish", topic: "once", payload: Buffer.from("exactly once"), qos: 2, messageId: 7, retain: false, dup: false });
  expect((await publisher.next("pubrec")).messageId).toBe(7);
  publisher.close(); // no PUBREL: the handshake is left halfway
  await eventually(() => listener.messages.length === 1);
  await listener.client.endAsync();
  await broker.close();

  broker = await start(data);
  const watcher = await connect(broker, { clientId: "watcher", clean: true });
  await watcher.client.subscribeAsync("once", { qos: 2 });
  const again = await rawClient(broker, "qos2-publisher");
  expect(again.sessionPresent).toBe(true); // no subscriptions, but a session (with its QoS 2 state) [MQTT-3.2.2-2]
  again.send({ cmd: "publish", topic: "once", payload: Buffer.from("exactly once"), qos: 2, messageId: 7, retain: false, dup: true });
  expect((await again.next("pubrec")).messageId).toBe(7);
  again.send({ cmd: "pubrel", messageId: 7 });
  expect((await again.next("pubcomp")).messageId).toBe(7);
  again.close();
  const backReady = reports.ready(broker.aedes, "listener");
  const back = await connect(broker, { clientId: "listener", clean: false });
  await backReady; // its queue sent
  // A QoS 2 PUBLISH gets its PUBREC once published, its copies written: the watcher would have it.
  await Promise.all([roundTrip(back.client), roundTrip(watcher.client)]);
  // Delivered before the restart, and not a second time: neither to the session nor to a new subscriber.
  expect(back.messages).toEqual([]);
  expect(watcher.messages).toEqual([]);
  await back.client.endAsync();
  await watcher.client.endAsync();
  await broker.close();
});

test("a QoS 2 delivery stopped after PUBREC resumes with PUBREL after a restart", async () => {
  const data = dir.join("qos2-out");
  let broker = await start(data);
  const receiver = await rawClient(broker, "qos2-receiver");
  receiver.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "handshake", qos: 2 }] });
  await receiver.next("suback");
  await publish(broker, [["handshake", "halfway", 2]]);
  const delivered = await receiver.next("publish");
  receiver.send({ cmd: "pubrec", messageId: delivered.messageId });
  const pubrel = await receiver.next("pubrel");
  expect(pubrel.messageId).toBe(delivered.messageId!);
  receiver.close(); // no PUBCOMP
  await broker.close();

  broker = await start(data);
  const again = await rawClient(broker, "qos2-receiver");
  expect(again.sessionPresent).toBe(true);
  // The broker resumes where it was: PUBREL again, not the PUBLISH [MQTT-4.4.0-1].
  expect((await again.next("pubrel")).messageId).toBe(delivered.messageId!);
  expect(again.seen.filter((p) => p.cmd === "publish")).toEqual([]);
  const acked = reports.acked(broker.aedes, "qos2-receiver");
  again.send({ cmd: "pubcomp", messageId: delivered.messageId });
  await acked;
  again.close();
  await broker.close();

  broker = await start(data);
  const ready = reports.ready(broker.aedes, "qos2-receiver");
  const done = await rawClient(broker, "qos2-receiver");
  await ready; // its queue sent
  await done.roundTrip();
  expect(done.seen.filter((p) => p.cmd === "pubrel" || p.cmd === "publish")).toEqual([]);
  done.close();
  await broker.close();
});

test("the will of a client connected to a broker that died is published by the next broker's will sweep", async () => {
  const file = dir.join("wills", BROKER_DB_FILE);
  // The first broker "dies": it is never closed, and never heard from by the second.
  const dead = await startAedes(file);
  const server = createServer((socket) => dead.handle(socket));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  const doomed = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
    clientId: "doomed",
    reconnectPeriod: 0,
    will: { topic: "status/doomed", payload: Buffer.from("gone"), qos: 1, retain: false },
  });

  const next = await startAedes(file, 25); // sweeps every 4 × 25 ms
  const heard: string[] = [];
  next.subscribe("status/+", (packet, cb) => {
    heard.push(`${packet.topic} ${packet.payload.toString()}`);
    cb();
  }, () => {});
  await eventually(() => heard.length === 1, 2_000);
  expect(heard).toEqual(["status/doomed gone"]);
  expect(await next.persistence.getWill({ id: "doomed" })).toBeUndefined();

  doomed.end(true);
  server.close();
  await new Promise<void>((resolve) => dead.close(() => resolve()));
  await new Promise<void>((resolve) => next.close(() => resolve()));
  await dead.persistence.destroy();
  await next.persistence.destroy();
});

async function startAedes(file: string, heartbeatInterval?: number) {
  const persistence = new SqlitePersistence({ file });
  const aedes = await Aedes.createBroker({ persistence, ...(heartbeatInterval && { heartbeatInterval }) });
  return Object.assign(aedes, { persistence });
}
