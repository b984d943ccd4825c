/**
 * A large commit of events while an outside subscriber consumes slowly (a poor mobile link): the
 * platform stays up and every event still reaches the subscribers that keep up, in order.
 */
import { expect, test } from "bun:test";
import { createConnection, type Socket } from "node:net";
import mqttPacket, { type Packet } from "mqtt-packet";
import { boot } from "../../helpers/boot";
import { connectMqtt, eventually } from "../../helpers/mqtt";
import { uniqueId } from "../../helpers/raw-mqtt";

const EVENTS = 100_000;

const bulk = `import { definePlugin, route, t } from "plinth";
export default definePlugin({
  name: "bulk", version: "1.0.0",
  migrations: ["CREATE TABLE runs (n INTEGER)"],
  routes: {
    "POST /": route({
      body: t.Object({ n: t.Integer() }),
      handler(ctx) {
        ctx.tx(() => {
          ctx.db.query("INSERT INTO runs (n) VALUES (?)").run(ctx.body.n);
          for (let i = 0; i < ctx.body.n; i++) ctx.emit("bulk", { i });
        });
        return { emitted: ctx.body.n };
      },
    }),
  },
});`;

interface SlowSubscriber {
  /** PUBLISH packets read so far. */
  readonly count: number;
  /** Their payloads' `data.i`, in the order read. */
  readonly seen: number[];
  readonly closed: boolean;
  destroy(): void;
}

/**
 * A plain MQTT 3.1.1 client on a raw socket that reads one packet at a time and acknowledges each
 * QoS 1 PUBLISH `delayMs` later, reading nothing in between (the kernel's buffers fill up).
 */
async function slowSubscriber(url: string, filter: string, delayMs: number): Promise<SlowSubscriber> {
  const { hostname, port } = new URL(url);
  const socket: Socket = createConnection({ host: hostname, port: Number(port) });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  socket.on("error", () => {});
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const packets: Packet[] = [];
  let count = 0;
  const seen: number[] = [];
  let closed = false;
  let waiting: (() => void) | null = null;
  parser.on("packet", (p) => packets.push(p));
  socket.on("data", (chunk: Buffer) => {
    socket.pause();
    parser.parse(chunk);
    waiting?.();
  });
  socket.on("close", () => {
    closed = true;
    waiting?.();
  });
  const send = (p: Record<string, unknown>) => socket.write(mqttPacket.generate(p as unknown as Packet));
  const read = async (): Promise<Packet | null> => {
    while (packets.length === 0) {
      if (closed) return null;
      await new Promise<void>((resolve) => {
        waiting = resolve;
        socket.resume();
      });
      waiting = null;
    }
    return packets.shift()!;
  };
  send({ cmd: "connect", protocolId: "MQTT", protocolVersion: 4, clean: true, keepalive: 0, clientId: uniqueId("slow") });
  if ((await read())?.cmd !== "connack") throw new Error("no CONNACK");
  send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: filter, qos: 1 }] });
  if ((await read())?.cmd !== "suback") throw new Error("no SUBACK");
  void (async () => {
    for (let p = await read(); p; p = await read()) {
      if (p.cmd !== "publish") continue;
      count++;
      seen.push(JSON.parse(p.payload.toString()).data.i);
      await Bun.sleep(delayMs);
      if (p.qos > 0) send({ cmd: "puback", messageId: p.messageId });
    }
  })();
  return {
    get count() {
      return count;
    },
    get closed() {
      return closed;
    },
    seen,
    destroy: () => socket.destroy(),
  };
}

test("a commit of 100,000 events with a slow QoS 1 subscriber: the platform stays up and every event is published, in order", async () => {
  await using p = await boot({ files: { "bulk.ts": bulk } });
  // Counted in process, on the broker itself: the slow client does not get them all (it is disconnected
  // as a slow consumer once its queue is full), and a fast outside subscriber would hide the fault.
  const seen: number[] = [];
  const unsubscribe = await p.platform.broker.bus.subscribe("events/bulk/#", (_topic, payload) => seen.push(JSON.parse(payload.toString()).data.i));
  const slow = await slowSubscriber(p.mqttUrl, "events/#", 2);
  try {
    const res = await p.req("/api/bulk", { json: { n: EVENTS } });
    expect(res.status).toBe(200);
    await eventually(() => seen.length >= EVENTS, 120_000, 50);
    expect(seen.length).toBe(EVENTS);
    let inOrder = true;
    for (let i = 0; i < EVENTS; i++) if (seen[i] !== i) inOrder = false;
    expect(inOrder).toBe(true);
    // What the slow subscriber read before it was disconnected (as a slow consumer) came in order.
    expect(slow.count).toBeGreaterThan(0);
    expect(slow.seen.every((v, i) => v === i)).toBe(true);
    // The fault's trigger: the slow client left (a slow consumer) while the rest waited in the broker's queue.
    expect(p.platform.broker.stats.slowConsumers).toBe(1);
    expect(slow.closed).toBe(true);
    // Still serving: another request, and its event.
    expect((await p.req("/api/bulk", { json: { n: 1 } })).status).toBe(200);
    await eventually(() => seen.length === EVENTS + 1, 10_000);
  } finally {
    slow.destroy();
    await unsubscribe();
  }
}, 180_000);
