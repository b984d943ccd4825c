/**
 * A large commit of events while an outside subscriber consumes slowly (a poor mobile link): the
 * platform stays up and every event still reaches the subscribers that keep up, in order.
 */
import { expect, test } from "bun:test";
import { boot, ON_MAIN_THREAD, inside } from "../../helpers/boot";
import { connectMqtt, eventually } from "../../helpers/mqtt";
import { slowSubscriber } from "../../helpers/slow-subscriber";

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

test("a commit of 100,000 events with a slow QoS 1 subscriber: the platform stays up and every event is published, in order", async () => {
  await using p = await boot({ files: { "bulk.ts": bulk } }, {}, ON_MAIN_THREAD);
  // Counted in process, on the broker itself: the slow client does not get them all (it is disconnected
  // as a slow consumer once its queue is full), and a fast outside subscriber would hide the fault.
  const seen: number[] = [];
  const unsubscribe = await p.platform.bus.subscribe("events/bulk/#", (_topic, payload) => seen.push(JSON.parse(payload.toString()).data.i));
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
    expect(slow.received.length).toBeGreaterThan(0);
    expect(slow.received.every((p, i) => JSON.parse(p.payload.toString()).data.i === i)).toBe(true);
    // The fault's trigger: the slow client left (a slow consumer) while the rest waited in the broker's queue.
    expect(inside(p).stats.slowConsumers).toBe(1);
    expect(slow.closed).toBe(true);
    // Still serving: another request, and its event.
    expect((await p.req("/api/bulk", { json: { n: 1 } })).status).toBe(200);
    await eventually(() => seen.length === EVENTS + 1, 10_000);
  } finally {
    slow.destroy();
    await unsubscribe();
  }
}, 180_000);
