/** The worker channel's sender: what leaves together, and when. */
import { describe, expect, test } from "bun:test";
import { nestsDeeperThan } from "../../../runtime/json-depth";
import { MAX_DEPTH, batched, decode, encode, type HostMessage } from "../../../runtime/worker/channel";

type Sent = HostMessage | { t: "batch"; items: HostMessage[] };

function harness(maxItems?: number) {
  const sent: Sent[] = [];
  const scheduled: Array<() => void> = [];
  const sender = batched<HostMessage>((text) => sent.push(decode<Sent>(text)), (flush) => scheduled.push(flush), maxItems);
  const tick = () => scheduled.splice(0).forEach((f) => f());
  return { sent, sender, tick };
}

const ping: HostMessage = { t: "ping" };

describe("batched", () => {
  test("one message leaves as it is, at the scheduled flush", () => {
    const { sent, sender, tick } = harness();
    sender.post(ping);
    expect(sent).toEqual([]);
    tick();
    expect(sent).toEqual([ping]);
  });

  test("messages posted before the flush leave as one batch, in order", () => {
    const { sent, sender, tick } = harness();
    sender.post({ t: "deadletters", id: 1 });
    sender.post({ t: "deadletters", id: 2 });
    tick();
    expect(sent).toEqual([{ t: "batch", items: [{ t: "deadletters", id: 1 }, { t: "deadletters", id: 2 }] }]);
  });

  test("a batch leaves as soon as it holds maxItems; the scheduled flush then sends only what came after", () => {
    const { sent, sender, tick } = harness(2);
    for (let i = 1; i <= 3; i++) sender.post({ t: "deadletters", id: i });
    expect(sent).toEqual([{ t: "batch", items: [{ t: "deadletters", id: 1 }, { t: "deadletters", id: 2 }] }]);
    tick();
    expect(sent.slice(1)).toEqual([{ t: "deadletters", id: 3 }]);
    tick();
    expect(sent).toHaveLength(2);
  });

  test("a message that cannot cross throws to its poster; the others leave as if it had never been posted", () => {
    const { sent, sender, tick } = harness();
    sender.post({ t: "deadletters", id: 1 });
    expect(() => sender.post({ t: "reply", id: 1, ok: true, value: 1n })).toThrow(expect.objectContaining({ code: "PLT_BAD_REQUEST" }));
    sender.post({ t: "deadletters", id: 2 });
    tick();
    expect(sent).toEqual([{ t: "batch", items: [{ t: "deadletters", id: 1 }, { t: "deadletters", id: 2 }] }]);
  });

  test("flush() sends at once; a flush with nothing waiting sends nothing", () => {
    const { sent, sender, tick } = harness();
    sender.post(ping);
    sender.flush();
    expect(sent).toEqual([ping]);
    tick();
    sender.flush();
    expect(sent).toEqual([ping]);
  });
});

test("messages cross as JSON text: what JSON cannot hold arrives as null, so senders send null for 'none'", () => {
  const text = encode({ t: "call", id: 1, target: "a.b", params: { at: new Date(0), n: Infinity }, deadline: null, request: null });
  expect(typeof text).toBe("string");
  expect(decode(text)).toEqual({ t: "call", id: 1, target: "a.b", params: { at: "1970-01-01T00:00:00.000Z", n: null }, deadline: null, request: null });
});

function nested(levels: number): unknown {
  let value: unknown = 0;
  for (let i = 0; i < levels; i++) value = i % 2 ? [value] : { a: value };
  return value;
}

describe("encode and decode refuse what would overflow a thread's stack, as an error of that message", () => {
  const reply = (value: unknown): HostMessage => ({ t: "reply", id: 1, ok: true, value });

  test.each([
    ["a BigInt", 1n, /JSON cannot carry/],
    ["a cycle", (() => { const o: Record<string, unknown> = {}; o.o = o; return o; })(), /JSON cannot carry/],
    ["100,000 levels (JSON.stringify's RangeError)", nested(100_000), /nested deeper than 1000 levels/],
    ["MAX_DEPTH levels under an envelope", nested(MAX_DEPTH), /nested deeper than 1000 levels/],
  ])("encode: %s → PLT_BAD_REQUEST", (_name, value, reason) => {
    let thrown: unknown;
    try {
      encode(reply(value));
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toMatchObject({ code: "PLT_BAD_REQUEST", message: expect.stringMatching(reason) });
  });

  test("a value just within the bound crosses both ways", () => {
    const value = nested(MAX_DEPTH - 2);
    expect(decode(encode(reply(value)))).toEqual(reply(value));
  });

  test.each([
    ["text nested 50,000 levels", "[".repeat(50_000) + "]".repeat(50_000)],
    ["not JSON", "{"],
    ["not text", { t: "pong" }],
  ])("decode: %s → PLT_BAD_REQUEST", (_name, data) => {
    expect(() => decode(data)).toThrow(expect.objectContaining({ code: "PLT_BAD_REQUEST" }));
  });

  test("nestsDeeperThan: brackets inside strings do not count; escaped quotes do not end a string", () => {
    const inString = JSON.stringify({ s: "[{".repeat(5_000), t: 'a\\"[[[' });
    expect(nestsDeeperThan(inString, 10)).toBe(false);
    expect(nestsDeeperThan(JSON.stringify(nested(11)) + " ".repeat(100), 10)).toBe(true);
    expect(nestsDeeperThan(JSON.stringify(nested(10)) + " ".repeat(100), 10)).toBe(false);
  });
});
