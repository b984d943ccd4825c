/**
 * The compiled binary's broker keeps its state in data/_broker.sqlite: a
 * retained message and a persistent session (clean: false, QoS 1
 * subscription) survive a graceful restart and a kill -9, and what was
 * published while the subscriber was offline reaches it when it comes back
 * with the same client id.
 */
import { expect, test } from "bun:test";
import { existsSync } from "node:fs";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { startBinary } from "../helpers/binary";
import { eventually } from "../helpers/mqtt";
import { writePlugins } from "../helpers/plugins";
import { tempDir } from "../helpers/tmp";

interface Session {
  client: MqttClient;
  sessionPresent: boolean;
  messages: Array<{ topic: string; payload: string; qos: number; retain: boolean }>;
}

/** The message listener is in place before CONNACK: queued messages follow it at once. */
function connect(url: string, options: IClientOptions): Promise<Session> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5_000, ...options });
  const messages: Session["messages"] = [];
  client.on("message", (topic, payload, packet) => messages.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain }));
  return new Promise((resolve, reject) => {
    client.once("connect", (connack) => resolve({ client, sessionPresent: connack.sessionPresent, messages }));
    client.once("error", reject);
  });
}

/** QoS 2: the broker answers PUBREC only once the message is stored for its subscribers. */
async function publish(url: string, messages: Array<[topic: string, payload: string, options: { qos: 1 | 2; retain?: boolean }]>) {
  const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, clientId: `publisher-${Date.now()}` });
  for (const [topic, payload, options] of messages) await c.publishAsync(topic, payload, options);
  await c.endAsync();
}

const SUBSCRIBER = { clientId: "e2e-persistent-sub", clean: false } as const;

test("a retained message and a persistent session survive a graceful restart and a kill -9", async () => {
  using dir = tempDir("plinth-e2e-broker");
  writePlugins(dir.join("plugins"), {});
  const app = await startBinary(dir.path, ["--no-watch"]);
  expect(existsSync(dir.join("data", "_broker.sqlite"))).toBe(true);

  const first = await connect(app.mqttUrl, SUBSCRIBER);
  expect(first.sessionPresent).toBe(false);
  expect(await first.client.subscribeAsync("devices/+/status", { qos: 1 })).toMatchObject([{ qos: 1 }]);
  await first.client.endAsync();
  await publish(app.mqttUrl, [
    ["site/config", "v1", { qos: 1, retain: true }],
    ["devices/a/status", "offline-1", { qos: 2 }],
    ["devices/b/status", "offline-2", { qos: 1 }],
    ["devices/z/status", "sentinel-1", { qos: 1 }],
  ]);

  // Graceful restart (SIGTERM), on new ports.
  expect(await app.stop("SIGTERM")).toBe(0);
  const second = await startBinary(dir.path, ["--no-watch"]);
  const back = await connect(second.mqttUrl, SUBSCRIBER);
  expect(back.sessionPresent).toBe(true);
  // A session's queue is sent in order: once the sentinel queued last arrives, all before it have.
  await eventually(() => back.messages.some((m) => m.payload === "sentinel-1"));
  expect(back.messages).toEqual([
    { topic: "devices/a/status", payload: "offline-1", qos: 1, retain: false },
    { topic: "devices/b/status", payload: "offline-2", qos: 1, retain: false },
    { topic: "devices/z/status", payload: "sentinel-1", qos: 1, retain: false },
  ]);
  const reader = await connect(second.mqttUrl, { clientId: "e2e-reader", clean: true });
  await reader.client.subscribeAsync("site/#", { qos: 1 });
  await eventually(() => reader.messages.length === 1);
  expect(reader.messages[0]).toEqual({ topic: "site/config", payload: "v1", qos: 1, retain: true });
  await reader.client.endAsync();

  // Offline again; two more messages stored, then kill -9.
  await back.client.endAsync();
  await publish(second.mqttUrl, [
    ["devices/c/status", "offline-3", { qos: 2 }],
    ["devices/d/status", "offline-4", { qos: 2 }],
    ["devices/z/status", "sentinel-2", { qos: 1 }],
  ]);
  second.proc.kill("SIGKILL");
  expect(await second.proc.exited).not.toBe(0);

  await using third = await startBinary(dir.path, ["--no-watch"]);
  const again = await connect(third.mqttUrl, SUBSCRIBER);
  expect(again.sessionPresent).toBe(true);
  // Nothing already acknowledged comes again: it would come before the sentinel queued last.
  await eventually(() => again.messages.some((m) => m.payload === "sentinel-2"));
  expect(again.messages.map((m) => [m.topic, m.payload, m.qos])).toEqual([
    ["devices/c/status", "offline-3", 1],
    ["devices/d/status", "offline-4", 1],
    ["devices/z/status", "sentinel-2", 1],
  ]);
  // Still subscribed after the crash: a live message arrives without a new SUBSCRIBE.
  await publish(third.mqttUrl, [["devices/e/status", "live", { qos: 1 }]]);
  await eventually(() => again.messages.some((m) => m.payload === "live"));
  await again.client.endAsync();

  const reader2 = await connect(third.mqttUrl, { clientId: "e2e-reader", clean: true });
  await reader2.client.subscribeAsync("site/config", { qos: 1 });
  await eventually(() => reader2.messages.length === 1);
  expect(reader2.messages[0]!.payload).toBe("v1");
  await reader2.client.endAsync();
  expect(await third.stop("SIGTERM")).toBe(0);
}, 60_000);
