import { describe, expect, test } from "bun:test";
import mqemitter from "mqemitter";
import { BATCH, Emitter } from "../../../runtime/broker/emitter";

type Message = { topic: string; n: number };

/**
 * What a slow subscriber leaves behind: `concurrency` messages held by it, then `queued` messages to a
 * topic nobody subscribes to, waiting behind them. `release()` lets the held ones finish.
 */
function backlog(mq: { on(t: string, l: (m: Message, done: () => void) => void): unknown; emit(m: Message, cb?: () => void): unknown }, concurrency: number, queued: number) {
  const held: Array<() => void> = [];
  mq.on("slow", (_m, done) => held.push(done));
  const finished: number[] = [];
  for (let i = 0; i < concurrency; i++) mq.emit({ topic: "slow", n: i }, () => finished.push(i));
  for (let i = 0; i < queued; i++) mq.emit({ topic: "nobody", n: concurrency + i }, () => finished.push(concurrency + i));
  return { held, finished, release: () => held.splice(0).forEach((done) => done()) };
}

describe("mqemitter (aedes' own emitter)", () => {
  // The reason for Emitter. When this fails, mqemitter drains its queue without recursion and
  // runtime/broker/emitter.ts can go.
  test("drains a long queue of messages nobody receives in nested calls: a stack overflow", () => {
    const mq = mqemitter({ concurrency: 100 });
    const { release } = backlog(mq as never, 100, 200_000);
    expect(release).toThrow(RangeError);
  });
});

describe("Emitter", () => {
  test("drains the same long queue in a loop: every callback, in order, no overflow", async () => {
    const mq = new Emitter<Message>({ concurrency: 100 });
    const { release, finished } = backlog(mq, 100, 200_000);
    expect(mq.length).toBe(200_000);
    release();
    await new Promise<void>((resolve) => {
      const check = () => (finished.length === 200_100 ? resolve() : setImmediate(check));
      check();
    });
    expect(finished.filter((n) => n >= 100).every((n, i) => n === 100 + i)).toBe(true);
    expect(mq.length).toBe(0);
    expect(mq.current).toBe(0);
  });

  test("a subscriber that throws is reported; the message still completes and the queue goes on", () => {
    const errors: string[] = [];
    const mq = new Emitter<Message>({ concurrency: 1, onError: (err, topic) => errors.push(`${topic}: ${(err as Error).message}`) });
    const got: string[] = [];
    mq.on("a/#", (m, done) => {
      if (m.topic === "a/bad") throw new Error("boom");
      got.push(m.topic);
      done();
    });
    const completed: string[] = [];
    for (const topic of ["a/1", "a/bad", "a/2", "a/3"]) mq.emit({ topic } as Message, () => completed.push(topic));
    expect(errors).toEqual(["a/bad: boom"]);
    expect(got).toEqual(["a/1", "a/2", "a/3"]);
    expect(completed).toEqual(["a/1", "a/bad", "a/2", "a/3"]);
    expect(mq.current).toBe(0);
    mq.emit({ topic: "a/4" } as Message);
    expect(got.at(-1)).toBe("a/4");
  });

  test("lets the event loop turn while a long queue drains (after BATCH messages)", async () => {
    const mq = new Emitter<Message>({ concurrency: 10 });
    const { release, finished } = backlog(mq, 10, BATCH * 4);
    let seenAt = -1;
    setImmediate(() => (seenAt = finished.length));
    release();
    expect(finished.length).toBeLessThan(10 + BATCH * 4);
    await new Promise<void>((resolve) => {
      const check = () => (finished.length === 10 + BATCH * 4 ? resolve() : setImmediate(check));
      check();
    });
    expect(seenAt).toBeGreaterThan(0);
    expect(seenAt).toBeLessThan(10 + BATCH * 4);
  });

  test("delivers at most `concurrency` messages at once; the rest wait, in order", () => {
    const mq = new Emitter<Message>({ concurrency: 3 });
    const held: Array<{ n: number; done: () => void }> = [];
    mq.on("a/+", (m, done) => held.push({ n: m.n, done }));
    for (let n = 0; n < 5; n++) mq.emit({ topic: "a/x", n });
    expect(held.map((h) => h.n)).toEqual([0, 1, 2]);
    expect(mq.length).toBe(2);
    held.shift()!.done();
    expect(held.map((h) => h.n)).toEqual([1, 2, 3]);
    // A message emitted while others wait waits behind them [MQTT-4.6.0-6].
    held.shift()!.done();
    held.shift()!.done();
    mq.emit({ topic: "a/x", n: 5 });
    expect(held.map((h) => h.n)).toEqual([3, 4, 5]);
  });

  test("calls back once every matching listener is done; '#' and '+' match as in MQTT, '#' also the parent level", () => {
    const mq = new Emitter<Message>();
    const got: string[] = [];
    mq.on("a/#", (m, done) => (got.push(`#:${m.topic}`), done()));
    mq.on("a/+", (m, done) => (got.push(`+:${m.topic}`), done()));
    let called = 0;
    mq.emit({ topic: "a/b", n: 0 }, () => called++);
    mq.emit({ topic: "a", n: 1 }, () => called++);
    mq.emit({ topic: "b", n: 2 }, () => called++);
    expect(got).toEqual(["#:a/b", "+:a/b", "#:a"]);
    expect(called).toBe(3);
  });

  test("a removed listener gets nothing once its removal is done; a closed emitter refuses messages", async () => {
    const mq = new Emitter<Message>();
    const got: number[] = [];
    const listener = (m: Message, done: () => void) => (got.push(m.n), done());
    await new Promise<void>((resolve) => mq.on("t", listener, resolve));
    mq.emit({ topic: "t", n: 1 });
    await new Promise<void>((resolve) => mq.removeListener("t", listener, resolve));
    mq.emit({ topic: "t", n: 2 });
    expect(got).toEqual([1]);
    await new Promise<void>((resolve) => mq.close(resolve));
    const err = await new Promise<Error | undefined>((resolve) => mq.emit({ topic: "t", n: 3 }, resolve));
    expect(err?.message).toBe("mqemitter is closed");
  });
});
