/**
 * The broker (aedes) on its SQLite persistence, restarted on the same data
 * folder, with MQTT.js clients over TCP: persistent sessions and retained
 * messages outlive the broker.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { Value } from "@sinclair/typebox/value";
import { ConfigSchema, type Config } from "../../../config/schema";
import { startBroker, type Broker } from "../../../runtime/broker/broker";
import { BROKER_DB_FILE } from "../../../runtime/broker/persistence";
import type { SqlitePersistence } from "../../../runtime/broker/persistence/sqlite";
import { createLogger } from "../../../runtime/log";
import { eventually } from "../../helpers/mqtt";
import { tempDir } from "../../helpers/tmp";

const dir = tempDir("plinth-broker-restart");
const open: MqttClient[] = [];
afterAll(async () => {
  await Promise.all(open.map((c) => c.endAsync(true).catch(() => {})));
  dir[Symbol.dispose]();
});

/** The broker section with its defaults (persistence: "sqlite"), on a free port. */
const config = (overrides: Partial<Config["broker"]> = {}) =>
  Value.Default(ConfigSchema.properties.broker, { port: 0, websocketPath: "", ...overrides }) as Config["broker"];
const start = (dataDir: string, overrides?: Partial<Config["broker"]>) =>
  startBroker(config(overrides), createLogger({ level: "silent" }), { dataDir });
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
  await again.client.endAsync();
  await reader.client.endAsync();
  await broker.close();
  broker = await start(data);
  const third = await connect(broker, { clientId: "dev-1", clean: false });
  expect(third.sessionPresent).toBe(true);
  await Bun.sleep(200);
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
  const again = await connect(broker, { clientId: "slow", clean: false });
  await eventually(() => again.messages.length >= 2);
  await Bun.sleep(100);
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
