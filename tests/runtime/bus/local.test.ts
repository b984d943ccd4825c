/**
 * The Bus on the embedded broker (runtime/bus/local.ts), on a real aedes with its SQLite store and
 * real MQTT clients: a plugin's events port (a MessageChannel here) published through it. An event
 * is published when someone can want it (a connected subscriber, an offline persistent session's
 * QoS 1 subscription) and otherwise only acknowledged, costing the broker nothing.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startBroker, type Broker } from "../../../runtime/broker/broker";
import type { Bus } from "../../../runtime/bus/bus";
import { localBus } from "../../../runtime/bus/local";
import { createLogger } from "../../../runtime/log";
import type { CommittedEvent } from "../../../runtime/protocol";
import { encode, type PublishAck } from "../../../runtime/worker/channel";
import { brokerConfig } from "../../helpers/broker-config";
import * as reports from "../../helpers/broker-reports";
import { connectMqtt, type TestClient } from "../../helpers/mqtt";
import { tempDir } from "../../helpers/tmp";

const dir = tempDir("plinth-local-bus");
let broker: Broker;
let bus: Bus;
let url: string;
let service = 0;
const clients: TestClient[] = [];

beforeAll(async () => {
  broker = await startBroker(brokerConfig(), createLogger({ level: "silent" }), { dataDir: dir.path });
  bus = localBus(broker.aedes, createLogger({ level: "silent" }));
  url = `mqtt://127.0.0.1:${broker.port}`;
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.end()));
  await broker.close();
  dir[Symbol.dispose]();
});

async function client(options: Parameters<typeof connectMqtt>[1] = {}): Promise<TestClient> {
  const c = await connectMqtt(url, options);
  clients.push(c);
  return c;
}

/** A service of its own for each test, its events port served by the bus; `send` posts a batch and resolves with its ack. */
function served() {
  const name = `svc${++service}`;
  const channel = new MessageChannel();
  const stop = bus.serveEvents(channel.port2, name, null);
  const send = (events: CommittedEvent[]) =>
    new Promise<PublishAck>((resolve) => {
      channel.port1.onmessage = (e) => resolve(e.data as PublishAck);
      channel.port1.postMessage(encode({ events }));
    });
  return { name, send, stop: () => (stop(), channel.port1.close()) };
}

const event = (seq: number, type = "made"): CommittedEvent => ({ seq, id: `id-${seq}`, type, time: "2026-12-01T00:00:00.000Z", data: { seq } });

test("an event nobody subscribes to is acknowledged as sent and never reaches aedes' publish", async () => {
  const s = served();
  const published: string[] = [];
  const onPublish = (packet: { topic: string }) => published.push(packet.topic);
  broker.aedes.on("publish", onPublish);
  try {
    const quiet = await s.send([event(1), event(2)]);
    expect(quiet).toEqual({ sent: [1, 2], unsent: [], quiet: { types: ["made"], at: expect.any(Number), clock: expect.any(SharedArrayBuffer) } });
    // A wanted one, after: aedes reports it, and the two before it were never handed over.
    const sub = await client();
    await sub.subscribe(`events/${s.name}/wanted`);
    expect(await s.send([event(3, "wanted")])).toEqual({ sent: [3], unsent: [] });
    // The subscription moved the clock: "made" is quiet still, at a later reading.
    const later = (await s.send([event(4)])).quiet!;
    expect(later.at).toBeGreaterThan(quiet.quiet!.at);
    expect(later.clock).toBeUndefined(); // told once per port
    await sub.next((m) => m.topic === `events/${s.name}/wanted`);
    expect(published.filter((t) => t.startsWith(`events/${s.name}/`))).toEqual([`events/${s.name}/wanted`]);
  } finally {
    broker.aedes.off("publish", onPublish);
    s.stop();
  }
});

test("a connected subscriber (wildcard filter) gets every event, in order", async () => {
  const s = served();
  const sub = await client();
  await sub.subscribe(`events/${s.name}/#`, 1);
  expect(await s.send([event(1, "a"), event(2, "b/c")])).toEqual({ sent: [1, 2], unsent: [] });
  await sub.next((m) => m.topic.endsWith("/b/c"));
  expect(sub.received.map((m) => m.json().id)).toEqual(["id-1", "id-2"]);
  s.stop();
});

test("an offline persistent session's QoS 1 subscription is an audience: the event waits for it; a QoS 0 one is not", async () => {
  const s = served();
  const away = await client({ clientId: `away-${s.name}`, clean: false });
  await away.subscribe(`events/${s.name}/kept`, 1);
  await away.subscribe(`events/${s.name}/dropped`, 0);
  await away.end();
  expect(await s.send([event(1, "kept"), event(2, "dropped")])).toMatchObject({ sent: [1, 2], unsent: [] });
  const ready = reports.ready(broker.aedes, `away-${s.name}`);
  const back = await client({ clientId: `away-${s.name}`, clean: false });
  await ready;
  expect((await back.next((m) => m.topic.endsWith("/kept"))).json().id).toBe("id-1");
  // A sentinel on a topic it subscribed to live: published after the reconnection, delivered after anything queued.
  await back.subscribe(`events/${s.name}/sentinel`, 1);
  expect(await s.send([event(3, "sentinel")])).toEqual({ sent: [3], unsent: [] });
  await back.next((m) => m.topic.endsWith("/sentinel"));
  expect(back.received.map((m) => m.topic)).toEqual([`events/${s.name}/kept`, `events/${s.name}/sentinel`]);
  s.stop();
});
