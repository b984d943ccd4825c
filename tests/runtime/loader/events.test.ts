/**
 * Events between services and the broker, without a broker: a fake Bus whose sends the test
 * completes (or fails) by hand. `done` is what decides whether the outbox rows are marked sent
 * (WorkerHost acks only when it runs without an error), so a failed send must reach it.
 */
import { describe, expect, test } from "bun:test";
import type { Bus } from "../../../runtime/broker/bus";
import { publishEvents, toCloudEvent } from "../../../runtime/loader/events";
import { createLogger } from "../../../runtime/log";
import type { CommittedEvent } from "../../../runtime/protocol";
import { MAX_DATA_DEPTH } from "../../../runtime/worker/channel";

interface Sent {
  topic: string;
  payload: string;
  /** Completes this send as the broker would: no argument for taken, an error for refused. */
  complete(err?: Error | null): void;
}

/** A Bus whose `send`s wait for the test to complete them; the other methods are not used by publishEvents. */
function fakeBus(): Bus & { sent: Sent[] } {
  const sent: Sent[] = [];
  const unused = () => {
    throw new Error("publishEvents uses send only");
  };
  return {
    sent,
    send: (topic, payload, done) => void sent.push({ topic, payload, complete: (err) => done(err) }),
    publish: unused,
    clearRetained: unused,
    subscribe: unused,
  };
}

/** A Bus that completes every send at once, refusing those whose topic `refuse` names. */
function instantBus(refuse: (topic: string) => Error | null = () => null): Bus & { topics: string[] } {
  const bus = fakeBus();
  const topics: string[] = [];
  return { ...bus, topics, send: (topic, _payload, done) => (topics.push(topic), done(refuse(topic))) };
}

/** Records done's calls: how many, and with what. */
function doneSpy() {
  const calls: Array<Error | undefined> = [];
  return { calls, done: (err?: Error) => void calls.push(err) };
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
    const bus = fakeBus();
    publishEvents(bus, "orders", [event(1, "placed"), event(2, "line/added")], null, silent, () => {});
    expect(bus.sent.map((s) => s.topic)).toEqual(["events/orders/placed", "events/orders/line/added"]);
    expect(bus.sent.map((s) => JSON.parse(s.payload))).toEqual([
      { specversion: "1.0", id: "id-1", source: "plinth/orders", type: "orders.placed", time: "2026-12-01T00:00:00.000Z", datacontenttype: "application/json", sequence: "1", data: { seq: 1 } },
      { specversion: "1.0", id: "id-2", source: "plinth/orders", type: "orders.line.added", time: "2026-12-01T00:00:00.000Z", datacontenttype: "application/json", sequence: "2", data: { seq: 2 } },
    ]);
  });

  test("events of the log's current generation carry its id; those before its start do not", () => {
    const bus = fakeBus();
    publishEvents(bus, "orders", [event(4), event(5)], { id: "g2", start: 5 }, silent, () => {});
    expect(bus.sent.map((s) => JSON.parse(s.payload).generation)).toEqual([undefined, "g2"]);
  });

  test("done runs once, after the broker has taken every event, without an error", () => {
    const bus = fakeBus();
    const spy = doneSpy();
    publishEvents(bus, "orders", [event(1), event(2), event(3)], null, silent, spy.done);
    expect(spy.calls).toEqual([]);
    bus.sent[2]!.complete();
    bus.sent[0]!.complete(null);
    expect(spy.calls).toEqual([]);
    bus.sent[1]!.complete();
    expect(spy.calls).toEqual([undefined]);
  });

  test("a send the broker refuses fails done (so the rows stay unsent), after every send has completed", () => {
    const bus = fakeBus();
    const spy = doneSpy();
    const refused = new Error("broker store: disk full");
    publishEvents(bus, "orders", [event(1), event(2), event(3)], null, silent, spy.done);
    bus.sent[1]!.complete(refused);
    expect(spy.calls).toEqual([]); // the others are still in the broker
    bus.sent[0]!.complete();
    bus.sent[2]!.complete();
    expect(spy.calls).toEqual([refused]);
  });

  test("done hears the first refusal when several sends fail", () => {
    const bus = fakeBus();
    const spy = doneSpy();
    const first = new Error("first");
    publishEvents(bus, "orders", [event(1), event(2), event(3)], null, silent, spy.done);
    bus.sent[2]!.complete(first);
    bus.sent[0]!.complete(new Error("second"));
    bus.sent[1]!.complete(new Error("third"));
    expect(spy.calls).toEqual([first]);
  });

  test("a refusal fails done whichever event it hits: the first, the last, the only one", () => {
    const refused = new Error("refused");
    for (const [count, failing] of [[3, 1], [3, 3], [1, 1]] as const) {
      const bus = instantBus((topic) => (topic === `events/orders/t${failing}` ? refused : null));
      const spy = doneSpy();
      const events = Array.from({ length: count }, (_, i) => event(i + 1, `t${i + 1}`));
      publishEvents(bus, "orders", events, null, silent, spy.done);
      expect(bus.topics).toHaveLength(count);
      expect(spy.calls).toEqual([refused]);
    }
  });

  test("sends that complete at once (synchronously) still run done once, after the last", () => {
    const bus = instantBus();
    const spy = doneSpy();
    publishEvents(bus, "orders", [event(1), event(2)], null, silent, spy.done);
    expect(bus.topics).toEqual(["events/orders/made", "events/orders/made"]);
    expect(spy.calls).toEqual([undefined]);
  });

  test("no events: done runs at once, without an error, and nothing is sent", () => {
    const bus = fakeBus();
    const spy = doneSpy();
    publishEvents(bus, "orders", [], null, silent, spy.done);
    expect(bus.sent).toEqual([]);
    expect(spy.calls).toEqual([undefined]);
  });

  test("an event with an invalid type is dropped and logged; the others are published and done does not fail for it", () => {
    const bus = fakeBus();
    const spy = doneSpy();
    const { lines, log } = logLines();
    publishEvents(bus, "orders", [event(1, "ok"), event(2, "bad/#/type"), event(3, "also-ok")], null, log, spy.done);
    expect(bus.sent.map((s) => s.topic)).toEqual(["events/orders/ok", "events/orders/also-ok"]);
    expect(lines).toEqual([expect.objectContaining({ level: "error", msg: "event dropped: invalid type", service: "orders", type: "bad/#/type" })]);
    bus.sent[0]!.complete();
    expect(spy.calls).toEqual([]);
    bus.sent[1]!.complete();
    expect(spy.calls).toEqual([undefined]);
  });

  test("only invalid types: nothing is sent and done runs at once, without an error", () => {
    const bus = fakeBus();
    const spy = doneSpy();
    publishEvents(bus, "orders", [event(1, "+"), event(2, "")], null, silent, spy.done);
    expect(bus.sent).toEqual([]);
    expect(spy.calls).toEqual([undefined]);
  });
});

describe("toCloudEvent", () => {
  const payload = (value: unknown) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value));

  test("a CloudEvent (a service's event) passes through as it is", () => {
    const ce = { specversion: "1.0", id: "x", source: "plinth/orders", type: "orders.placed", time: "t", data: { n: 1 }, sequence: "7" };
    expect(toCloudEvent("events/orders/placed", payload(ce)) as unknown).toEqual(ce);
  });

  test("any other JSON payload is wrapped as mqtt.message, its topic as subject", () => {
    const ce = toCloudEvent("sensors/1", payload({ temp: 21, specversion: "0.3" }));
    expect(ce).toEqual({
      specversion: "1.0",
      id: expect.any(String),
      source: "mqtt",
      type: "mqtt.message",
      time: expect.any(String),
      datacontenttype: "application/json",
      subject: "sensors/1",
      data: { temp: 21, specversion: "0.3" },
    });
    expect(Number.isNaN(Date.parse(ce.time))).toBe(false);
    expect(toCloudEvent("sensors/1", payload(1)).id).not.toBe(ce.id);
  });

  test("JSON scalars and null are data as parsed; text that is not JSON stays text", () => {
    expect(toCloudEvent("t", payload("42")).data).toBe(42);
    expect(toCloudEvent("t", payload("null")).data).toBeNull();
    expect(toCloudEvent("t", payload('"quoted"')).data).toBe("quoted");
    expect(toCloudEvent("t", payload("not json {")).data).toBe("not json {");
    expect(toCloudEvent("t", Buffer.alloc(0)).data).toBe("");
  });

  test("a payload nested deeper than event data may be stays text, even when it is a CloudEvent", () => {
    const deep = `{"specversion":"1.0","id":"x","data":${"[".repeat(MAX_DATA_DEPTH)}${"]".repeat(MAX_DATA_DEPTH)}}`;
    const ce = toCloudEvent("t", payload(deep));
    expect(ce.type).toBe("mqtt.message");
    expect(ce.data).toBe(deep);
    const atLimit = "[".repeat(MAX_DATA_DEPTH) + "]".repeat(MAX_DATA_DEPTH);
    expect(toCloudEvent("t", payload(atLimit)).data).toEqual(JSON.parse(atLimit));
  });
});
