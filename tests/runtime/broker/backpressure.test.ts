/**
 * The outgoing side of MQTT over TCP (runtime/broker/tcp.ts): aedes' pieces framed and sent as one
 * buffer per turn, the bounded per-client queue (QoS 0 dropped past broker.maxQueuedBytesPerClient,
 * QoS 1 kept, slow consumers disconnected at 8×), and read backpressure. First on a fake socket,
 * then through a real broker with a subscriber that stops reading.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import mqttPacket, { type Packet } from "mqtt-packet";
import { startBroker, type Broker } from "../../../runtime/broker/broker";
import { SLOW_CONSUMER_FACTOR, SocketStream, transportStats, type TransportStats } from "../../../runtime/broker/stream";
import { createLogger } from "../../../runtime/log";
import { brokerConfig } from "../../helpers/broker-config";
import { connectMqtt, eventually, type TestClient } from "../../helpers/mqtt";
import { rawSession, uniqueId, type RawClient } from "../../helpers/raw-mqtt";

/** A stand-in for a Bun socket: takes at most `room` bytes per write (Infinity: everything). */
class FakeSocket {
  room = Infinity;
  readonly sent: Buffer[] = [];
  writes = 0;
  paused = false;
  readyState = 1;
  ended = false;
  data = { stream: null, rejected: false };
  write(data: Uint8Array): number {
    this.writes++;
    const n = Math.min(this.room, data.length);
    if (n > 0) this.sent.push(Buffer.from(data.subarray(0, n)));
    if (this.room !== Infinity) this.room -= n;
    return n;
  }
  pause() {
    this.paused = true;
  }
  resume() {
    this.paused = false;
  }
  end() {
    this.ended = true;
    this.readyState = 0;
  }
}

function fakeStream(maxQueuedBytes: number): { socket: FakeSocket; stream: SocketStream; stats: TransportStats } {
  const socket = new FakeSocket();
  const stats = transportStats();
  const stream = new SocketStream(socket as never, maxQueuedBytes, stats);
  stream.on("error", () => {});
  return { socket, stream, stats };
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** What the client would parse from the bytes sent. */
function parseAll(bytes: Buffer): Packet[] {
  const parser = mqttPacket.parser();
  const packets: Packet[] = [];
  parser.on("packet", (p) => packets.push(p));
  parser.parse(bytes);
  return packets;
}

const publish = (topic: string, payload: string, qos: 0 | 1, messageId?: number) =>
  ({ cmd: "publish", topic, payload: Buffer.from(payload), qos, retain: false, dup: false, ...(qos ? { messageId } : {}) }) as Packet;

describe("SocketStream (fake socket)", () => {
  test("packets written in pieces by mqtt-packet go out as one buffer per turn, byte for byte", async () => {
    const { socket, stream } = fakeStream(1024);
    const packets = [publish("a/b", "one", 0), publish("a/ü/€", "two", 1, 7), { cmd: "pingresp" } as Packet, publish("c", "", 0)];
    for (const p of packets) mqttPacket.writeToStream(p, stream as never);
    expect(socket.writes).toBe(0);
    await turn();
    expect(socket.writes).toBe(1);
    const bytes = Buffer.concat(socket.sent);
    expect(bytes).toEqual(Buffer.concat(packets.map((p) => mqttPacket.generate(p))));
  });

  test("past the bound, QoS 0 PUBLISH packets are dropped whole and counted; QoS 1 and other packets are kept", async () => {
    const { socket, stream, stats } = fakeStream(100);
    socket.room = 0; // the client reads nothing
    const written: Packet[] = [];
    const write = (p: Packet) => {
      written.push(p);
      mqttPacket.writeToStream(p, stream as never);
    };
    write(publish("t", "x".repeat(60), 0)); // 65 bytes queued
    write(publish("t", "y".repeat(60), 0)); // under the bound when it starts: kept (130 queued)
    write(publish("t", "z".repeat(60), 0)); // dropped
    write(publish("t", "q".repeat(60), 1, 1)); // QoS 1: kept
    write({ cmd: "pingresp" } as Packet); // kept
    write(publish("t", "w".repeat(60), 0)); // dropped
    await turn();
    expect(stats.droppedQos0).toBe(2);
    expect(stream.queuedBytes).toBe(65 + 65 + 67 + 2);

    socket.room = Infinity;
    stream.drained();
    expect(stream.queuedBytes).toBe(0);
    const got = parseAll(Buffer.concat(socket.sent));
    expect(got.map((p) => (p.cmd === "publish" ? `${p.qos}:${p.payload.toString()[0]}` : p.cmd))).toEqual(["0:x", "0:y", "1:q", "pingresp"]);
    expect(stats.publishSent).toBe(3);
  });

  test("a write the socket takes in part is finished on drain, in order", async () => {
    const { socket, stream } = fakeStream(0);
    socket.room = 10;
    const packets = [publish("a", "0123456789".repeat(5), 0), publish("b", "abc", 1, 2)];
    for (const p of packets) mqttPacket.writeToStream(p, stream as never);
    await turn();
    expect(stream.queuedBytes).toBeGreaterThan(0);
    socket.room = 7;
    stream.drained();
    socket.room = Infinity;
    stream.drained();
    expect(Buffer.concat(socket.sent)).toEqual(Buffer.concat(packets.map((p) => mqttPacket.generate(p))));
  });

  test(`at ${SLOW_CONSUMER_FACTOR}× the bound the client is disconnected as a slow consumer; QoS 1 is never dropped before`, async () => {
    const { socket, stream, stats } = fakeStream(100);
    socket.room = 0;
    let id = 0;
    while (!stream.destroyed && id < 1000) mqttPacket.writeToStream(publish("t", "x".repeat(60), 1, ++id), stream as never);
    expect(stream.destroyed).toBe(true);
    expect(stats.slowConsumers).toBe(1);
    expect(stats.droppedQos0).toBe(0);
    // every QoS 1 packet before the limit was queued: 67 bytes each
    expect(id).toBe(Math.ceil((100 * SLOW_CONSUMER_FACTOR) / 67) + 1);
    expect(socket.ended).toBe(true);
  });

  test("0 means no bound: nothing is dropped", async () => {
    const { socket, stream, stats } = fakeStream(0);
    socket.room = 0;
    for (let i = 0; i < 200; i++) mqttPacket.writeToStream(publish("t", "x".repeat(60), 0), stream as never);
    await turn();
    expect(stats.droppedQos0).toBe(0);
    expect(stream.queuedBytes).toBe(200 * 65);
  });

  test("reading pauses the socket while aedes has not consumed its input, and resumes when it reads", () => {
    const { socket, stream } = fakeStream(0);
    stream.on("readable", () => {}); // aedes reads with read() on "readable"
    for (let i = 0; i < 100 && !socket.paused; i++) stream.received(Buffer.alloc(4096));
    expect(socket.paused).toBe(true);
    while (stream.read() !== null);
    expect(socket.paused).toBe(false);
  });
});

describe("a broker with a subscriber that stops reading", () => {
  const LIMIT = 64 * 1024;
  const PAYLOAD = Buffer.alloc(1024, "p");
  let broker: Broker;
  let url: string;
  const clients: Array<TestClient | RawClient> = [];

  beforeAll(async () => {
    broker = await startBroker(brokerConfig({ persistence: "memory", maxQueuedBytesPerClient: LIMIT, sysIntervalMs: 0 }), createLogger({ level: "silent" }));
    url = `mqtt://127.0.0.1:${broker.port}`;
  });
  afterAll(async () => {
    for (const c of clients) "destroy" in c ? c.destroy() : await c.end();
    await broker.close();
  });

  /** A raw subscriber, subscribed to each filter at its QoS, that then stops reading its socket. */
  async function stalled(subscriptions: Array<[string, 0 | 1]>): Promise<RawClient & { clientId: string }> {
    const clientId = uniqueId("slow");
    const c = await rawSession(url, { clientId });
    clients.push(c);
    c.send({ cmd: "subscribe", messageId: 1, subscriptions: subscriptions.map(([topic, qos]) => ({ topic, qos })) });
    await c.next("suback");
    c.socket.pause();
    return Object.assign(c, { clientId });
  }

  /** The broker's stream for a client (to read its queue). */
  const queueOf = (clientId: string) => {
    const clients = (broker.aedes as unknown as { clients: Record<string, { conn: unknown }> }).clients;
    return (clients[clientId]?.conn as SocketStream | undefined)?.queuedBytes ?? 0;
  };

  async function client(): Promise<TestClient> {
    const c = await connectMqtt(url);
    clients.push(c);
    return c;
  }

  test("a QoS 0 flood: the stalled client's queue stays bounded, the excess is dropped and counted, a reading subscriber gets everything", async () => {
    const topic = `flood/${uniqueId()}`;
    const N = 32_000; // 32 MB: more than the kernel's socket buffers hold
    const slow = await stalled([[topic, 0]]);
    const fast = await client();
    let fastCount = 0;
    fast.client.on("message", (t) => t === topic && fastCount++);
    await fast.subscribe(topic, 0);
    const publisher = await client();
    const droppedBefore = broker.stats.droppedQos0;

    let maxQueue = 0;
    for (let i = 0; i < N; i += 32) {
      for (let k = 0; k < 32; k++) publisher.client.publish(topic, PAYLOAD, { qos: 0 });
      // A QoS 1 round trip paces the publisher to what the broker has handled, so that a client that
      // reads never has more than a burst of 32 KiB waiting (a larger burst than the bound would be
      // dropped for it too: the bound is per client, whatever the reason it is behind).
      await publisher.client.publishAsync(`${topic}/pace`, "", { qos: 1 });
      maxQueue = Math.max(maxQueue, queueOf(slow.clientId));
    }
    await eventually(() => fastCount === N, 10_000);
    const dropped = broker.stats.droppedQos0 - droppedBefore;
    expect(dropped).toBeGreaterThan(0);
    // bounded: the limit plus at most one packet started under it
    expect(maxQueue).toBeLessThanOrEqual(LIMIT + PAYLOAD.length + topic.length + 4);

    // Once it reads again, it gets exactly what was not dropped, in order.
    slow.socket.resume();
    await eventually(() => slow.received.filter((p) => p.cmd === "publish").length === N - dropped, 10_000);
    // Each copy for slow was written to its queue (or dropped) in the turn the reading subscriber's was:
    // a PINGRESP queued behind them comes after anything more.
    await slow.ping();
    expect(slow.received.filter((p) => p.cmd === "publish").length).toBe(N - dropped);
    expect(slow.closed).toBe(false);
  }, 30_000);

  test("QoS 1 messages to a stalled client are never dropped, while QoS 0 ones around them are", async () => {
    const flood = `flood/${uniqueId()}`;
    const important = `important/${uniqueId()}`;
    const slow = await stalled([
      [flood, 0],
      [important, 1],
    ]);
    const publisher = await client();
    const droppedBefore = broker.stats.droppedQos0;
    const M = 200;
    for (let i = 0; i < M; i++) {
      for (let k = 0; k < 100; k++) publisher.client.publish(flood, PAYLOAD, { qos: 0 });
      await publisher.client.publishAsync(important, String(i), { qos: 1 });
    }
    expect(broker.stats.droppedQos0 - droppedBefore).toBeGreaterThan(0);
    slow.socket.resume();
    const got = () => slow.received.filter((p) => p.cmd === "publish" && p.topic === important).map((p) => (p as { payload: Buffer }).payload.toString());
    await eventually(() => got().length === M, 10_000);
    expect(got()).toEqual(Array.from({ length: M }, (_, i) => String(i)));
  }, 30_000);

  test(`a client that stops reading QoS 1 is disconnected once ${SLOW_CONSUMER_FACTOR}× the bound waits for it; the others go on`, async () => {
    const topic = `qos1/${uniqueId()}`;
    const slow = await stalled([[topic, 1]]);
    const other = await client();
    await other.subscribe(topic, 1);
    const publisher = await client();
    const before = broker.stats.slowConsumers;
    for (let i = 0; i < 60_000 && !slow.closed; i += 200) {
      await Promise.all(Array.from({ length: 200 }, () => publisher.client.publishAsync(topic, PAYLOAD, { qos: 1 })));
    }
    slow.socket.resume();
    await slow.waitClosed(5_000);
    expect(broker.stats.slowConsumers).toBe(before + 1);
    await other.client.publishAsync(`${topic}/x`, "", { qos: 0 }); // the broker still serves
    const sentinel = `sentinel-${uniqueId()}`;
    await publisher.client.publishAsync(topic, sentinel, { qos: 1 });
    await other.next((m) => m.payload.toString() === sentinel, 10_000);
  }, 30_000);
});
