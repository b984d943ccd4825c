/**
 * The Publisher alone, on a real MessageChannel: the test holds the bus's end, reads each batch and
 * answers it as the bus would. One batch on its way at a time; what commits meanwhile leaves in one
 * batch once the answer comes; refusals are relayed after a backoff; a new port relays what was on
 * its way on the old one.
 */
import { afterEach, expect, test } from "bun:test";
import type { CommittedEvent } from "../../../runtime/protocol";
import type { PublishAck, PublishBatch } from "../../../runtime/worker/channel";
import { Publisher } from "../../../runtime/worker/publisher";
import { SubscriptionClock } from "../../../runtime/broker/subscription-clock";
import { eventually } from "../../helpers/eventually";

const event = (seq: number): CommittedEvent => ({ seq, id: `e${seq}`, type: "made", time: "2026-01-01T00:00:00.000Z", data: { seq } });

/** The bus's end of an events port: batches as they arrive, and a way to answer them. */
function busEnd(port: MessagePort) {
  const batches: number[][] = [];
  const waiters: Array<() => void> = [];
  port.onmessage = (e) => {
    batches.push((JSON.parse(e.data as string) as PublishBatch).events.map((ev) => ev.seq));
    for (const w of waiters.splice(0)) w();
  };
  return {
    batches,
    /** Resolves once `n` batches have arrived. */
    async received(n: number): Promise<void> {
      while (batches.length < n) await new Promise<void>((resolve) => waiters.push(resolve));
    },
    answer(ack: PublishAck): void {
      port.postMessage(ack);
    },
  };
}

const open: MessagePort[] = [];
afterEach(() => {
  for (const p of open.splice(0)) p.close();
});

function setup() {
  const channel = new MessageChannel();
  open.push(channel.port1, channel.port2);
  const acked: number[][] = [];
  let relays = 0;
  const publisher = new Publisher((seqs) => acked.push(seqs), () => relays++, () => ({ error() {} }));
  publisher.attach(channel.port1, false);
  return { publisher, bus: busEnd(channel.port2), acked, relays: () => relays };
}

test("events published in one turn leave as one batch", async () => {
  const { publisher, bus } = setup();
  publisher.publish([event(1)]);
  publisher.publish([event(2), event(3)]);
  await bus.received(1);
  expect(bus.batches).toEqual([[1, 2, 3]]);
});

test("while a batch is unanswered, what commits waits, and leaves as one batch when the answer comes", async () => {
  const { publisher, bus, acked } = setup();
  publisher.publish([event(1)]);
  await bus.received(1);
  publisher.publish([event(2)]);
  await Bun.sleep(0);
  publisher.publish([event(3)]);
  // A sentinel channel's message, posted after those turns, arrives after any batch they would have posted.
  const sentinel = new MessageChannel();
  open.push(sentinel.port1, sentinel.port2);
  await new Promise<void>((resolve) => {
    sentinel.port2.onmessage = () => resolve();
    sentinel.port1.postMessage("after");
  });
  expect(bus.batches).toEqual([[1]]);
  bus.answer({ sent: [1], unsent: [] });
  await bus.received(2);
  expect(bus.batches).toEqual([[1], [2, 3]]);
  expect(acked).toEqual([[1]]);
});

test("an event already on its way is not posted again by a relay", async () => {
  const { publisher, bus } = setup();
  publisher.publish([event(1), event(2)]);
  await bus.received(1);
  publisher.publish([event(1), event(2), event(3)]);
  bus.answer({ sent: [1, 2], unsent: [] });
  await bus.received(2);
  expect(bus.batches[1]).toEqual([3]);
});

test("what the broker refused is relayed after the backoff; what it took is marked sent", async () => {
  const { publisher, bus, acked, relays } = setup();
  publisher.publish([event(1), event(2)]);
  await bus.received(1);
  bus.answer({ sent: [1], unsent: [2], error: "store full" });
  expect(relays()).toBe(0); // not at once: after the backoff
  while (relays() === 0) await Bun.sleep(5);
  expect(acked).toEqual([[1]]);
});

test("a new port: what was on its way on the old one is relayed, and batches flow again at once", async () => {
  const { publisher, bus, relays } = setup();
  publisher.publish([event(1)]);
  await bus.received(1);
  const channel = new MessageChannel();
  open.push(channel.port1, channel.port2);
  const next = busEnd(channel.port2);
  publisher.attach(channel.port1, true);
  expect(relays()).toBe(1);
  publisher.publish([event(1)]);
  await next.received(1);
  expect(next.batches).toEqual([[1]]);
  expect(bus.batches).toEqual([[1]]);
});

test("whenIdle resolves once every batch, the waiting one included, is answered", async () => {
  const { publisher, bus } = setup();
  publisher.publish([event(1)]);
  await bus.received(1);
  publisher.publish([event(2)]);
  let idle = false;
  const done = publisher.whenIdle(10_000).then(() => (idle = true));
  bus.answer({ sent: [1], unsent: [] });
  await bus.received(2);
  expect(idle).toBe(false);
  bus.answer({ sent: [2], unsent: [] });
  await done;
  expect(idle).toBe(true);
});

test("events of a type the bus said nobody wanted are taken as sent here while the broker's clock reads the same; a tick sends them to the bus again", async () => {
  const { publisher, bus, acked } = setup();
  const clock = new SubscriptionClock();
  const other = (seq: number): CommittedEvent => ({ ...event(seq), type: "other" });
  publisher.publish([event(1), other(2)]);
  await bus.received(1);
  bus.answer({ sent: [1, 2], unsent: [], quiet: { types: ["made"], at: clock.now(), clock: clock.buffer } });
  await eventually(() => acked.length === 1); // the answer crossed the channel
  expect(acked).toEqual([[1, 2]]);

  publisher.publish([event(3), other(4), event(5)]);
  expect(acked).toEqual([[1, 2], [3, 5]]); // no message for them
  await bus.received(2);
  expect(bus.batches[1]).toEqual([4]);
  bus.answer({ sent: [4], unsent: [] });

  clock.tick(); // a subscription was taken
  publisher.publish([event(6)]);
  await bus.received(3);
  expect(bus.batches[2]).toEqual([6]);
});

test("a new port forgets what the old one's bus said nobody wanted", async () => {
  const { publisher, bus, acked } = setup();
  const clock = new SubscriptionClock();
  publisher.publish([event(1)]);
  await bus.received(1);
  bus.answer({ sent: [1], unsent: [], quiet: { types: ["made"], at: clock.now(), clock: clock.buffer } });
  await eventually(() => acked.length === 1);
  const next = new MessageChannel();
  open.push(next.port1, next.port2);
  publisher.attach(next.port1, false);
  const nextBus = busEnd(next.port2);
  publisher.publish([event(2)]);
  await nextBus.received(1);
  expect(nextBus.batches).toEqual([[2]]);
  expect(bus.batches).toHaveLength(1);
});
