/**
 * The bus's end of a worker's events port, without a broker: sends the test completes (or fails)
 * by hand. The ack decides which outbox rows the worker marks sent, so a refused send must be in
 * `unsent`, and the ack must come once, after every send has completed.
 */
import { describe, expect, test } from "bun:test";
import { publishEvents, serveEventPort, type Send } from "../../../runtime/bus/event-port";
import { createLogger } from "../../../runtime/log";
import { SubscriptionClock, readClock } from "../../../runtime/broker/subscription-clock";
import type { CommittedEvent } from "../../../runtime/protocol";
import { encode, type PublishAck } from "../../../runtime/worker/channel";

interface Sent {
  topic: string;
  payload: string;
  /** Completes this send as the broker would: no argument for taken, an error for refused. */
  complete(err?: Error | null): void;
}

/** Sends that wait for the test to complete them. */
function held(): { sent: Sent[]; send: Send } {
  const sent: Sent[] = [];
  return { sent, send: (topic, payload, done) => void sent.push({ topic, payload, complete: (err) => done(err) }) };
}

/** Sends completed at once, refusing those whose topic `refuse` names. */
function instant(refuse: (topic: string) => Error | null = () => null): { topics: string[]; send: Send } {
  const topics: string[] = [];
  return { topics, send: (topic, _payload, done) => (topics.push(topic), done(refuse(topic))) };
}

/** Records the acks: how many, and what they said. */
function acks() {
  const calls: PublishAck[] = [];
  return { calls, done: (ack: PublishAck) => void calls.push(ack) };
}

function logLines() {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: "debug", format: "json", write: (line) => lines.push(JSON.parse(line)) });
  return { lines, log };
}

const silent = createLogger({ level: "silent" });
const event = (seq: number, type = "made"): CommittedEvent => ({ seq, id: `id-${seq}`, type, time: "2026-12-01T00:00:00.000Z", data: { seq } });

describe("publishEvents", () => {
  test("publishes each event, in commit order, on the service's own topic as a CloudEvent", () => {
    const bus = held();
    publishEvents(bus.send, "orders", [event(1, "placed"), event(2, "line/added")], null, silent, () => {});
    expect(bus.sent.map((s) => s.topic)).toEqual(["events/orders/placed", "events/orders/line/added"]);
    expect(bus.sent.map((s) => JSON.parse(s.payload))).toEqual([
      { specversion: "1.0", id: "id-1", source: "plinth/orders", type: "orders.placed", time: "2026-12-01T00:00:00.000Z", datacontenttype: "application/json", sequence: "1", data: { seq: 1 } },
      { specversion: "1.0", id: "id-2", source: "plinth/orders", type: "orders.line.added", time: "2026-12-01T00:00:00.000Z", datacontenttype: "application/json", sequence: "2", data: { seq: 2 } },
    ]);
  });

  test("events of the log's current generation carry its id; those before its start do not", () => {
    const bus = held();
    publishEvents(bus.send, "orders", [event(4), event(5)], { id: "g2", start: 5 }, silent, () => {});
    expect(bus.sent.map((s) => JSON.parse(s.payload).generation)).toEqual([undefined, "g2"]);
  });

  test("the ack comes once, after the broker has taken every event, naming them all as sent", () => {
    const bus = held();
    const spy = acks();
    publishEvents(bus.send, "orders", [event(1), event(2), event(3)], null, silent, spy.done);
    expect(spy.calls).toEqual([]);
    bus.sent[2]!.complete();
    bus.sent[0]!.complete(null);
    expect(spy.calls).toEqual([]);
    bus.sent[1]!.complete();
    expect(spy.calls).toEqual([{ sent: [3, 1, 2], unsent: [] }]);
  });

  test("a send the broker refuses is unsent, with the broker's reason, once every send has completed", () => {
    const bus = held();
    const spy = acks();
    publishEvents(bus.send, "orders", [event(1), event(2), event(3)], null, silent, spy.done);
    bus.sent[1]!.complete(new Error("broker store: disk full"));
    expect(spy.calls).toEqual([]); // the others are still in the broker
    bus.sent[0]!.complete();
    bus.sent[2]!.complete();
    expect(spy.calls).toEqual([{ sent: [1, 3], unsent: [2], error: "broker store: disk full" }]);
  });

  test("several refusals: each is unsent, the first reason is told", () => {
    const bus = held();
    const spy = acks();
    publishEvents(bus.send, "orders", [event(1), event(2), event(3)], null, silent, spy.done);
    bus.sent[2]!.complete(new Error("first"));
    bus.sent[0]!.complete(new Error("second"));
    bus.sent[1]!.complete(new Error("third"));
    expect(spy.calls).toEqual([{ sent: [], unsent: [3, 1, 2], error: "first" }]);
  });

  test("a refusal is unsent whichever event it hits: the first, the last, the only one", () => {
    const refused = new Error("refused");
    for (const [count, failing] of [[3, 1], [3, 3], [1, 1]] as const) {
      const bus = instant((topic) => (topic === `events/orders/t${failing}` ? refused : null));
      const spy = acks();
      const events = Array.from({ length: count }, (_, i) => event(i + 1, `t${i + 1}`));
      publishEvents(bus.send, "orders", events, null, silent, spy.done);
      expect(bus.topics).toHaveLength(count);
      expect(spy.calls).toHaveLength(1);
      expect(spy.calls[0]!.unsent).toEqual([failing]);
      expect(spy.calls[0]!.sent).toEqual(events.map((e) => e.seq).filter((seq) => seq !== failing));
    }
  });

  test("events nobody wants (the audience says so for their topic) are sent as taken without a send, their types told as quiet at the clock's reading; the others go", () => {
    const bus = instant();
    const { calls, done } = acks();
    const asked: string[] = [];
    const clock = new SubscriptionClock();
    clock.tick();
    const audience = { wants: (topic: string) => (asked.push(topic), topic.endsWith("/wanted")), clock };
    publishEvents(bus.send, "orders", [event(1, "idle"), event(2, "wanted"), event(3, "idle"), event(4, "calm")], null, silent, done, audience);
    expect(asked).toEqual(["events/orders/idle", "events/orders/wanted", "events/orders/idle", "events/orders/calm"]);
    expect(bus.topics).toEqual(["events/orders/wanted"]);
    expect(calls).toEqual([{ sent: [1, 2, 3, 4], unsent: [], quiet: { types: ["idle", "calm"], at: 1 } }]);
  });

  test("no events: the ack comes at once, empty, and nothing is sent", () => {
    const bus = held();
    const spy = acks();
    publishEvents(bus.send, "orders", [], null, silent, spy.done);
    expect(bus.sent).toEqual([]);
    expect(spy.calls).toEqual([{ sent: [], unsent: [] }]);
  });

  test("an event with an invalid type is dropped and logged, and counts as sent (it can never be published)", () => {
    const bus = held();
    const spy = acks();
    const { lines, log } = logLines();
    publishEvents(bus.send, "orders", [event(1, "ok"), event(2, "bad/#/type"), event(3, "also-ok")], null, log, spy.done);
    expect(bus.sent.map((s) => s.topic)).toEqual(["events/orders/ok", "events/orders/also-ok"]);
    expect(lines).toEqual([expect.objectContaining({ level: "error", msg: "event dropped", service: "orders", seq: 2 })]);
    bus.sent[0]!.complete();
    expect(spy.calls).toEqual([]);
    bus.sent[1]!.complete();
    expect(spy.calls).toEqual([{ sent: [2, 1, 3], unsent: [] }]);
  });

  test("what is not an event (no integer seq) is dropped and logged, in neither list", () => {
    const bus = instant();
    const spy = acks();
    const { lines, log } = logLines();
    const junk = [null, 7, { type: "x" }, { ...event(1), seq: 1.5 }] as unknown as CommittedEvent[];
    publishEvents(bus.send, "orders", [...junk, event(2)], null, log, spy.done);
    expect(bus.topics).toEqual(["events/orders/made"]);
    expect(spy.calls).toEqual([{ sent: [2], unsent: [] }]);
    expect(lines.filter((l) => l.msg === "event dropped: not an event")).toHaveLength(4);
  });
});

describe("serveEventPort", () => {
  /** A port pair: the worker's end (`worker`) and the one the bus serves. */
  function ports() {
    const channel = new MessageChannel();
    const answers: PublishAck[] = [];
    const waiting: Array<() => void> = [];
    channel.port1.onmessage = (e) => {
      answers.push(e.data as PublishAck);
      waiting.splice(0).forEach((w) => w());
    };
    const next = async (count: number) => {
      while (answers.length < count) await new Promise<void>((resolve) => waiting.push(resolve));
      return answers.slice(0, count);
    };
    return { worker: channel.port1, bus: channel.port2, answers, next };
  }

  test("a batch from the worker is published on the port's service, whatever the events say, and answered on the port", async () => {
    const p = ports();
    const bus = instant();
    const stop = serveEventPort(bus.send, p.bus, "orders", null, silent);
    p.worker.postMessage(encode({ events: [event(1, "placed"), { ...event(2, "shipped"), source: "plinth/billing" } as CommittedEvent] }));
    expect(await p.next(1)).toEqual([{ sent: [1, 2], unsent: [] }]);
    expect(bus.topics).toEqual(["events/orders/placed", "events/orders/shipped"]);
    stop();
    p.worker.close();
  });

  test("with an audience, the port's first quiet answer carries the clock's buffer, shared: ticks on the bus's side are read on the worker's", async () => {
    const p = ports();
    const clock = new SubscriptionClock();
    const stop = serveEventPort(instant().send, p.bus, "orders", null, silent, { wants: (topic) => topic.endsWith("/wanted"), clock });
    p.worker.postMessage(encode({ events: [event(1, "wanted")] }));
    p.worker.postMessage(encode({ events: [event(2, "idle")] }));
    const [first, second] = await p.next(2);
    expect(first).toEqual({ sent: [1], unsent: [] });
    expect(second!.quiet).toMatchObject({ types: ["idle"], at: 0 });
    const read = readClock(second!.quiet!.clock!);
    expect(read()).toBe(0);
    clock.tick();
    expect(read()).toBe(1);
    p.worker.postMessage(encode({ events: [event(3, "idle")] }));
    expect((await p.next(3))[2]).toEqual({ sent: [3], unsent: [], quiet: { types: ["idle"], at: 1 } });
    stop();
    p.worker.close();
  });

  test("a message that is not a batch is logged and not answered; the port serves the next one", async () => {
    const p = ports();
    const bus = instant();
    const { lines, log } = logLines();
    const stop = serveEventPort(bus.send, p.bus, "orders", null, log);
    p.worker.postMessage("not json");
    p.worker.postMessage({ events: [event(1)] }); // not text
    p.worker.postMessage(JSON.stringify({ events: "x" }));
    p.worker.postMessage(`{"events":[${"[".repeat(5000)}${"]".repeat(5000)}]}`);
    p.worker.postMessage(encode({ events: [event(9)] }));
    expect(await p.next(1)).toEqual([{ sent: [9], unsent: [] }]);
    expect(lines.filter((l) => l.msg === "unreadable events from a service" && l.service === "orders")).toHaveLength(4);
    expect(bus.topics).toEqual(["events/orders/made"]);
    stop();
    p.worker.close();
  });
});
