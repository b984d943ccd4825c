/**
 * MQTT over WebSocket through the real platform, every client MQTT.js over ws://: the bound on what
 * waits for one client (broker.maxQueuedBytesPerClient; runtime/broker/stream.ts, shared with TCP) and
 * the $SYS counters for WebSocket traffic. The slow subscriber's connection goes through a proxy that
 * stops reading from the gateway (tests/helpers/stall-proxy.ts): to the broker, a client that stopped reading.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { SocketStream } from "../../../runtime/broker/stream";
import { boot, type Booted, ON_MAIN_THREAD, inside } from "../../helpers/boot";
import { connectMqtt, eventually, roundTrip, type Received, type TestClient } from "../../helpers/mqtt";
import { uniqueId } from "../../helpers/raw-mqtt";
import { stallProxy, type StallProxy } from "../../helpers/stall-proxy";

const LIMIT = 64 * 1024;
const PAYLOAD = Buffer.alloc(1024, "p");
let app: Booted;
let proxy: StallProxy;
const clients: TestClient[] = [];

beforeAll(async () => {
  app = await boot({}, { broker: { maxQueuedBytesPerClient: LIMIT, sysIntervalMs: 100 } }, ON_MAIN_THREAD);
  proxy = await stallProxy(app.platform.gateway.port);
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.end()));
  await proxy.close();
  await app.stop();
});

async function client(url = app.wsUrl, clientId = uniqueId("ws")): Promise<TestClient> {
  const c = await connectMqtt(url, { clientId });
  clients.push(c);
  return c;
}

/** The latest value seen on a $SYS topic, as a number. */
function latest(c: TestClient, topic: string): number {
  return Number(c.received.findLast((m: Received) => m.topic === `$SYS/broker/${topic}`)?.payload.toString());
}

/** What the broker holds for a client, in its stream and in Bun's WebSocket buffer. */
function queueOf(clientId: string): number {
  const connected = (inside(app).aedes as unknown as { clients: Record<string, { conn: unknown }> }).clients;
  return (connected[clientId]?.conn as SocketStream | undefined)?.queuedBytes ?? 0;
}

describe("MQTT over WebSocket, a subscriber that stops reading", () => {
  test("a QoS 0 flood: its queue stays bounded, the excess is dropped and counted on $SYS, a reading subscriber gets everything", async () => {
    const topic = `ws-flood/${uniqueId()}`;
    const N = 32_000; // 32 MB: more than the kernel's socket buffers on both sides of the proxy hold
    const slowId = uniqueId("ws-slow");
    const slow = await client(`ws://127.0.0.1:${proxy.port}${new URL(app.wsUrl).pathname}`, slowId);
    await slow.subscribe(topic, 0);
    proxy.stall();
    const fast = await client();
    let fastCount = 0;
    fast.client.on("message", (t) => t === topic && fastCount++);
    await fast.subscribe(topic, 0);
    const watcher = await client();
    await watcher.subscribe("$SYS/broker/messages/dropped", 0);
    const publisher = await client();
    const stats = inside(app).stats;
    const droppedBefore = stats.droppedQos0;

    let maxQueue = 0;
    for (let i = 0; i < N; i += 32) {
      for (let k = 0; k < 32; k++) publisher.client.publish(topic, PAYLOAD, { qos: 0 });
      // A QoS 1 round trip paces the publisher to what the broker has handled (see backpressure.test.ts).
      await publisher.client.publishAsync(`${topic}/pace`, "", { qos: 1 });
      maxQueue = Math.max(maxQueue, queueOf(slowId));
    }
    await eventually(() => fastCount === N, 20_000);
    const dropped = stats.droppedQos0 - droppedBefore;
    expect(dropped).toBeGreaterThan(0);
    // bounded: the limit plus at most one packet started under it
    expect(maxQueue).toBeGreaterThan(LIMIT / 2);
    expect(maxQueue).toBeLessThanOrEqual(LIMIT + PAYLOAD.length + topic.length + 4);
    await eventually(() => latest(watcher, "messages/dropped") === stats.droppedQos0);

    // Once it reads again, it gets exactly what was not dropped.
    const seen = () => slow.received.filter((m) => m.topic === topic).length;
    proxy.resume();
    await eventually(() => seen() === N - dropped, 20_000);
    // Each copy for it was queued (or dropped) in the turn the reading subscriber's was: an answer queued behind them comes after anything more.
    await roundTrip(slow.client);
    expect(seen()).toBe(N - dropped);
    expect(slow.client.connected).toBe(true);
  }, 90_000);
});

describe("$SYS counters", () => {
  test("count WebSocket traffic: bytes and messages received and sent", async () => {
    const watcher = await client();
    await watcher.subscribe("$SYS/broker/#", 0);
    const counters = ["bytes/received", "bytes/sent", "messages/received", "messages/sent"];
    await eventually(() => counters.every((c) => Number.isFinite(latest(watcher, c))));
    const before = Object.fromEntries(counters.map((c) => [c, latest(watcher, c)]));

    const topic = `ws-count/${uniqueId()}`;
    const sub = await client();
    await sub.subscribe(topic, 1);
    const pub = await client();
    const M = 50;
    for (let i = 0; i < M; i++) await pub.client.publishAsync(topic, PAYLOAD, { qos: 1 });
    await eventually(() => sub.received.filter((m) => m.topic === topic).length === M);

    const grew = (counter: string, by: number) => latest(watcher, counter) >= before[counter]! + by;
    await eventually(() => grew("bytes/received", M * PAYLOAD.length) && grew("bytes/sent", M * PAYLOAD.length));
    await eventually(() => grew("messages/received", M) && grew("messages/sent", M));
  });
});

describe("the MQTT WebSocket path", () => {
  test("a request without an Upgrade header is not upgraded: a JSON 404, like any unknown route; the API still answers beside it", async () => {
    const plain = await fetch(`${app.url}/mqtt`);
    expect(plain.status).toBe(404);
    expect(await plain.json()).toMatchObject({ error: { code: "PLT_NOT_FOUND" } });
    expect((await fetch(`${app.url}/health`)).status).toBe(200);
    const c = await client();
    expect(c.client.connected).toBe(true);
  });
});
