/** The worker channel's sender: what leaves together, and when. */
import { describe, expect, test } from "bun:test";
import { batched, decode, encode, type HostMessage } from "../../../runtime/worker/channel";

type Sent = HostMessage | { t: "batch"; items: HostMessage[] };

function harness(maxItems?: number) {
  const sent: Sent[] = [];
  const scheduled: Array<() => void> = [];
  const sender = batched<HostMessage>((m) => sent.push(m), (flush) => scheduled.push(flush), maxItems);
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
    sender.post({ t: "sent", seqs: [1] });
    sender.post({ t: "sent", seqs: [2] });
    tick();
    expect(sent).toEqual([{ t: "batch", items: [{ t: "sent", seqs: [1] }, { t: "sent", seqs: [2] }] }]);
  });

  test("a batch leaves as soon as it holds maxItems; the scheduled flush then sends only what came after", () => {
    const { sent, sender, tick } = harness(2);
    for (let i = 1; i <= 3; i++) sender.post({ t: "sent", seqs: [i] });
    expect(sent).toEqual([{ t: "batch", items: [{ t: "sent", seqs: [1] }, { t: "sent", seqs: [2] }] }]);
    tick();
    expect(sent.slice(1)).toEqual([{ t: "sent", seqs: [3] }]);
    tick();
    expect(sent).toHaveLength(2);
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
