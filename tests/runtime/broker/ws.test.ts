/**
 * A SocketStream (runtime/broker/stream.ts) over a Bun WebSocket (runtime/broker/ws.ts), on a stand-in
 * for ServerWebSocket that holds what its socket would not take, as Bun does (send → -1, then drain).
 * Through the real gateway and MQTT.js: tests/integration/broker/websocket.test.ts.
 */
import { expect, test } from "bun:test";
import mqttPacket, { type Packet } from "mqtt-packet";
import { SocketStream, transportStats } from "../../../runtime/broker/stream";
import { WebSocketWire } from "../../../runtime/broker/ws";

/** Holds everything it is sent until `drainAll()`; `drop` makes sendBinary report a dropped message. */
class FakeWebSocket {
  readyState: 0 | 1 | 2 | 3 = 1;
  held = 0;
  drop = false;
  paused = false;
  closed: number | null = null;
  readonly messages: Buffer[] = [];
  readonly delivered: Buffer[] = [];
  getBufferedAmount() {
    return this.held;
  }
  sendBinary(data: Uint8Array): number {
    if (this.drop) return 0;
    this.messages.push(Buffer.from(data));
    this.held += data.length;
    return -1;
  }
  drainAll() {
    this.delivered.push(...this.messages.splice(0));
    this.held = 0;
  }
  close(code = 1000) {
    this.closed = code;
    this.readyState = 3;
  }
  pause() {
    this.paused = true;
  }
  resume() {
    this.paused = false;
  }
}

function wsStream(maxQueuedBytes: number) {
  const ws = new FakeWebSocket();
  const stats = transportStats();
  const stream = new SocketStream(new WebSocketWire(ws), maxQueuedBytes, stats);
  stream.on("error", () => {});
  return { ws, stream, stats };
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
const publish = (payload: string, qos: 0 | 1, messageId?: number) =>
  ({ cmd: "publish", topic: "t", payload: Buffer.from(payload), qos, retain: false, dup: false, ...(qos ? { messageId } : {}) }) as Packet;
const write = (stream: SocketStream, p: Packet) => mqttPacket.writeToStream(p, stream as never);

test("one binary message per turn; while Bun holds one, the rest waits in the stream and goes on drain, in order", async () => {
  const { ws, stream, stats } = wsStream(0);
  write(stream, publish("a", 0));
  write(stream, publish("b", 1, 1));
  await turn();
  expect(ws.messages.length).toBe(1);
  write(stream, publish("c", 0));
  await turn();
  write(stream, publish("d", 0));
  await turn();
  expect(ws.messages.length).toBe(1); // Bun still holds the first: nothing more given to it
  expect(stream.queuedBytes).toBe(6 + 8 + 6 + 6);
  ws.drainAll();
  stream.drained();
  expect(ws.messages.length).toBe(1); // the first that waited is taken, and Bun holds again
  expect(stream.queuedBytes).toBe(6 + 6);
  ws.drainAll();
  stream.drained();
  ws.drainAll();
  const bytes = Buffer.concat(ws.delivered);
  expect(bytes).toEqual(Buffer.concat(["a", "b", "c", "d"].map((p, i) => mqttPacket.generate(publish(p, i === 1 ? 1 : 0, 1)))));
  expect(stats.bytesSent).toBe(bytes.length);
  expect(stats.publishSent).toBe(4);
});

test("what Bun holds counts toward the bound: past it QoS 0 is dropped and counted, QoS 1 kept", async () => {
  const { ws, stream, stats } = wsStream(100);
  write(stream, publish("x".repeat(120), 0)); // 125 bytes: handed to Bun, which holds them
  await turn();
  expect(ws.held).toBe(125);
  write(stream, publish("y", 0)); // dropped: Bun holds more than the bound
  write(stream, publish("z", 1, 2)); // kept
  await turn();
  expect(stats.droppedQos0).toBe(1);
  expect(stream.queuedBytes).toBe(125 + 8);
  ws.drainAll();
  stream.drained();
  ws.drainAll();
  const got = ws.delivered.map((b) => b.length);
  expect(got).toEqual([125, 8]);
});

test("a message Bun drops (not expected) closes the connection rather than leave a hole in the stream", async () => {
  const { ws, stream } = wsStream(0);
  ws.drop = true;
  write(stream, publish("a", 1, 1));
  await turn();
  expect(ws.closed).toBe(1011);
});

test("reading pauses the WebSocket while aedes has not consumed its input, and resumes when it reads", () => {
  const { ws, stream } = wsStream(0);
  stream.on("readable", () => {});
  for (let i = 0; i < 100 && !ws.paused; i++) stream.received(Buffer.alloc(4096));
  expect(ws.paused).toBe(true);
  while (stream.read() !== null);
  expect(ws.paused).toBe(false);
});
