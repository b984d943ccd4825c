/**
 * Delivery of committed events to one subscription, without a worker or a database: a fake
 * subscriber whose requests the test answers (or fails) by hand, a fake event log, and a fake timer
 * whose backoffs the test fires. Everything Delivery does then runs on promise continuations, so
 * once a macrotask has passed (`idle()`) it has done all it will do until the test acts again:
 * `next()` takes the one thing it did, and `nothingMore()` checks it did nothing else.
 */
import { describe, expect, test } from "bun:test";
import { PlinthError } from "../../../runtime/errors";
import { Delivery, systemTimer, type DeliveryOptions, type EventSource, type Timer } from "../../../runtime/loader/delivery";
import { createLogger } from "../../../runtime/log";
import type { CommittedEvent } from "../../../runtime/protocol";
import type { LogGeneration } from "../../../runtime/storage/generation";
import type { HostRequest } from "../../../runtime/worker/host";
import { checkProperty, fc } from "../../helpers/property";

type Deliver = Extract<HostRequest, { t: "deliver" }>;
type Bury = Extract<HostRequest, { t: "bury" }>;

/** A request Delivery made to the subscriber, waiting for the test to answer or fail it. */
interface Request {
  kind: "request";
  message: HostRequest;
  timeoutMs: number;
  answer(value?: unknown): void;
  fail(err: unknown): void;
}

/** A backoff Delivery waits out, until the test fires it (or Delivery cancels it). */
interface Sleep {
  kind: "sleep";
  ms: number;
  cancelled: boolean;
  fire(): void;
}

type Action = Request | Sleep;

const idle = () => new Promise<void>((resolve) => setImmediate(resolve));

const event = (seq: number, type = "made"): CommittedEvent => ({ seq, id: `id-${seq}`, type, time: "2026-12-01T00:00:00.000Z", data: { seq } });

/** Sources' logs in memory, read `page` events at a time. */
function fakeLogs(page = 500) {
  const events = new Map<string, CommittedEvent[]>();
  const generations = new Map<string, LogGeneration>();
  const logs: EventSource & { append(source: string, ...types: string[]): CommittedEvent[] } = {
    append(source, ...types) {
      const list = events.get(source) ?? [];
      events.set(source, list);
      const last = list.at(-1)?.seq ?? 0;
      const added = types.map((type, i) => ({ ...event(last + 1 + i, type), id: `${source}-${last + 1 + i}` }));
      list.push(...added);
      return added;
    },
    read: (source, afterSeq, limit = page) => (events.get(source) ?? []).filter((e) => e.seq > afterSeq).slice(0, Math.min(limit, page)),
    head: (source) => events.get(source)?.at(-1)?.seq ?? 0,
    generation: (source) => generations.get(source) ?? null,
  };
  return { logs, events, generations };
}

interface Setup extends Partial<DeliveryOptions> {
  filter?: string;
  page?: number;
}

function setup({ filter = "events/orders/#", page, ...options }: Setup = {}) {
  const actions: Action[] = [];
  const target = {
    name: "sink",
    request: (message: HostRequest, timeoutMs: number) =>
      new Promise<unknown>((answer, fail) => void actions.push({ kind: "request", message, timeoutMs, answer, fail })),
  };
  const timer: Timer = (fire, ms) => {
    const sleep: Sleep = { kind: "sleep", ms, cancelled: false, fire };
    actions.push(sleep);
    return () => {
      sleep.cancelled = true;
    };
  };
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: "debug", format: "json", write: (line) => lines.push(JSON.parse(line)) });
  const { logs, events, generations } = fakeLogs(page);
  const delivery = new Delivery(target, 2, filter, logs, { maxAttempts: 3, retryDelayMs: 100, timeoutMs: 1_000, ...options }, log, timer);

  /** The one thing Delivery did since the last look (fails when it did nothing). */
  async function next(): Promise<Action> {
    await idle();
    const action = actions.shift();
    if (!action) throw new Error("delivery did nothing");
    return action;
  }
  async function request(): Promise<Request> {
    const action = await next();
    if (action.kind !== "request") throw new Error(`expected a request, delivery slept ${action.ms} ms`);
    return action;
  }
  /** The next request, a batch: its events' sequence numbers as `source:seq`. */
  async function batch(): Promise<Request & { seqs: string[] }> {
    const r = await request();
    expect(r.message.t).toBe("deliver");
    const seqs = (r.message as Deliver).items.map((i) => `${i.event.source.split("/").at(-1)}:${i.event.sequence}`);
    return Object.assign(r, { seqs });
  }
  async function sleep(): Promise<Sleep> {
    const action = await next();
    if (action.kind !== "sleep") throw new Error(`expected a backoff, delivery sent ${action.message.t}`);
    return action;
  }
  async function nothingMore(): Promise<void> {
    await idle();
    expect(actions.map((a) => (a.kind === "sleep" ? `sleep ${a.ms}` : a.message.t))).toEqual([]);
  }
  const logged = (msg: string) => lines.filter((l) => l.msg === msg);
  return { delivery, logs, events, generations, lines, logged, next, request, batch, sleep, nothingMore };
}

const failure = (code: string, message = "no") => new PlinthError(code, message);
const failedAt = (handled: number, message = "handler threw") => ({ handled, error: failure("SINK_FAILED", message).toWire() });

describe("catching up and handing over", () => {
  test("resume catches up on every source's log and hands the subscriber the matching events, in commit order, as CloudEvents", async () => {
    const d = setup();
    d.logs.append("orders", "placed", "paid");
    d.logs.append("stock", "moved"); // another source's topic: not this subscription's
    d.generations.set("orders", { id: "g1", start: 2 });
    d.delivery.resume(new Map(), ["orders", "stock"]);
    const b = await d.request();
    expect(b.message).toMatchObject({ t: "deliver", subscription: 2 });
    const items = (b.message as Deliver).items;
    expect(items.map((i) => i.topic)).toEqual(["events/orders/placed", "events/orders/paid"]);
    expect(items[0]!.event).toMatchObject({ id: "orders-1", type: "orders.placed", sequence: "1", data: { seq: 1 } });
    expect(items[0]!.event.generation).toBeUndefined(); // below the generation's start
    expect(items[1]!.event.generation).toBe("g1");
    expect(b.timeoutMs).toBe(2_000); // timeoutMs per event
    b.answer({ handled: 2 });
    await d.nothingMore();
  });

  test("a batch carries at most 64 events and waits at most a minute", async () => {
    const d = setup({ page: 30 });
    d.logs.append("orders", ...Array.from({ length: 100 }, (_, i) => `e${i}`));
    d.delivery.resume(new Map(), ["orders"]);
    const first = await d.batch();
    expect(first.seqs).toHaveLength(64);
    expect(first.seqs[0]).toBe("orders:1");
    expect(first.timeoutMs).toBe(60_000);
    first.answer({ handled: 64 });
    const second = await d.batch();
    expect(second.seqs).toEqual(Array.from({ length: 36 }, (_, i) => `orders:${65 + i}`));
    expect(second.timeoutMs).toBe(36_000);
    second.answer({ handled: 36 });
    await d.nothingMore();
  });

  test("a subscription starts after its cursors, and catches up on a source it has a cursor for even if it is not listed", async () => {
    const d = setup({ filter: "events/#" });
    d.logs.append("orders", "a", "b", "c");
    d.logs.append("gone", "x", "y");
    d.delivery.resume(new Map([["orders", { seq: 1, generation: null }], ["gone", { seq: 1, generation: null }]]), ["orders"]);
    const b = await d.batch();
    expect(b.seqs).toEqual(["orders:2", "orders:3", "gone:2"]);
  });

  test("nothing is delivered before resume, nor when there is nothing to deliver", async () => {
    const d = setup();
    d.delivery.offer("orders", d.logs.append("orders", "a"));
    await d.nothingMore();
    d.delivery.resume(new Map([["orders", { seq: 1, generation: null }]]), ["orders"]);
    await d.nothingMore();
  });

  test("events offered while a batch is in the subscriber's hands go in the next batch; those already seen are not offered again", async () => {
    const d = setup();
    d.logs.append("orders", "a");
    d.delivery.resume(new Map(), ["orders"]);
    const first = await d.batch();
    const more = d.logs.append("orders", "b", "c");
    d.delivery.offer("orders", more);
    d.delivery.offer("orders", [d.events.get("orders")![0]!, ...more]); // a repeat
    await d.nothingMore(); // one batch at a time
    first.answer({ handled: 1 });
    const second = await d.batch();
    expect(second.seqs).toEqual(["orders:2", "orders:3"]);
    second.answer({ handled: 2 });
    await d.nothingMore();
  });

  test("an offer that skips ahead of what was seen catches up on the events in between from the log first", async () => {
    const d = setup({ page: 1 });
    d.logs.append("orders", "a");
    d.delivery.resume(new Map(), ["orders"]);
    (await d.batch()).answer({ handled: 1 });
    const later = d.logs.append("orders", "b", "c", "d", "e");
    d.delivery.offer("orders", later.slice(2)); // 4 and 5 arrive; 2 and 3 were missed
    const b = await d.batch();
    expect(b.seqs).toEqual(["orders:2", "orders:3", "orders:4", "orders:5"]);
  });

  test("an offer of a source never seen starts at its first event; events of other topics are passed over for good", async () => {
    const d = setup();
    d.delivery.resume(new Map(), []);
    d.delivery.offer("stock", d.logs.append("stock", "moved"));
    d.delivery.offer("orders", d.logs.append("orders", "a", "b"));
    const b = await d.batch();
    expect(b.seqs).toEqual(["orders:1", "orders:2"]);
  });

  test("settled() waits for the batch in the subscriber's hands", async () => {
    const d = setup();
    await d.delivery.settled(); // nothing in flight
    d.logs.append("orders", "a");
    d.delivery.resume(new Map(), ["orders"]);
    const b = await d.batch();
    let settled = false;
    void d.delivery.settled().then(() => (settled = true));
    await idle();
    expect(settled).toBe(false);
    b.answer({ handled: 1 });
    await idle();
    expect(settled).toBe(true);
  });
});

describe("failures, retries and dead letters", () => {
  test("a failing event is retried after a backoff that doubles, then dead-lettered after maxAttempts, and the next goes on", async () => {
    const d = setup({ maxAttempts: 3, retryDelayMs: 100 });
    d.logs.append("orders", "bad", "good");
    d.delivery.resume(new Map(), ["orders"]);
    for (const [attempt, ms] of [[1, 100], [2, 200]] as const) {
      const b = await d.batch();
      expect(b.seqs).toEqual(["orders:1", "orders:2"]);
      b.answer(failedAt(0, "cannot digest"));
      const s = await d.sleep();
      expect(s.ms).toBe(ms);
      expect(d.logged("event handler failed, will retry").at(-1)).toMatchObject({ level: "warn", subscriber: "sink", filter: "events/orders/#", id: "orders-1", attempt, error: "cannot digest" });
      s.fire();
    }
    (await d.batch()).answer(failedAt(0, "cannot digest"));
    const bury = await d.request();
    expect(bury.message).toMatchObject({ t: "bury", subscription: 2, topic: "events/orders/bad", error: "cannot digest", attempts: 3 });
    expect((bury.message as Bury).event).toMatchObject({ id: "orders-1", sequence: "1" });
    expect(bury.timeoutMs).toBe(1_000);
    expect(d.logged("event dead-lettered")).toEqual([expect.objectContaining({ level: "error", id: "orders-1", attempt: 3, error: "cannot digest" })]);
    bury.answer(null);
    const b = await d.batch();
    expect(b.seqs).toEqual(["orders:2"]);
    b.answer({ handled: 1 });
    await d.nothingMore();
  });

  test("after a dead letter, the next event that fails starts from its first attempt", async () => {
    const d = setup({ maxAttempts: 2 });
    d.logs.append("orders", "bad", "next");
    d.delivery.resume(new Map(), ["orders"]);
    (await d.batch()).answer(failedAt(0));
    (await d.sleep()).fire();
    (await d.batch()).answer(failedAt(0));
    (await d.request()).answer(null); // buried
    (await d.batch()).answer(failedAt(0));
    expect((await d.sleep()).ms).toBe(100);
    expect(d.logged("event handler failed, will retry").map((l) => [l.id, l.attempt])).toEqual([["orders-1", 1], ["orders-2", 1]]);
  });

  test("a batch that fails part-way is sent again from the event that failed", async () => {
    const d = setup();
    d.logs.append("orders", "a", "b", "c");
    d.delivery.resume(new Map(), ["orders"]);
    (await d.batch()).answer(failedAt(1));
    (await d.sleep()).fire();
    expect((await d.batch()).seqs).toEqual(["orders:2", "orders:3"]);
  });

  test("a subscription's retry counter starts again after progress: an event that fails transiently does not eat the attempts of the next one", async () => {
    const d = setup({ maxAttempts: 3 });
    d.logs.append("orders", "a", "b");
    d.delivery.resume(new Map(), ["orders"]);
    // a fails twice, is handled, then b fails: its first attempt, not the third.
    for (const handled of [0, 0, 1]) {
      (await d.batch()).answer(failedAt(handled));
      (await d.sleep()).fire();
    }
    expect(d.logged("event handler failed, will retry").map((l) => [l.id, l.attempt])).toEqual([["orders-1", 1], ["orders-1", 2], ["orders-2", 1]]);
    (await d.batch()).answer(failedAt(0));
    expect((await d.sleep()).ms).toBe(200); // b's second attempt's backoff
  });

  test("the retry backoff stops growing at 30 seconds", async () => {
    const d = setup({ maxAttempts: 10, retryDelayMs: 10_000 });
    d.logs.append("orders", "a");
    d.delivery.resume(new Map(), ["orders"]);
    const waits: number[] = [];
    for (let i = 0; i < 4; i++) {
      (await d.batch()).answer(failedAt(0));
      const s = await d.sleep();
      waits.push(s.ms);
      s.fire();
    }
    expect(waits).toEqual([10_000, 20_000, 30_000, 30_000]);
  });

  test("a batch the subscriber does not answer in time counts as a failed attempt of its first event", async () => {
    const d = setup({ maxAttempts: 2 });
    d.logs.append("orders", "a");
    d.delivery.resume(new Map(), ["orders"]);
    (await d.batch()).fail(failure("PLT_TIMEOUT", "no answer within 1000 ms"));
    const backoff = await d.sleep();
    expect(d.logged("event handler failed, will retry")).toEqual([expect.objectContaining({ attempt: 1, error: "no answer within 1000 ms" })]);
    backoff.fire();
    (await d.batch()).fail(new Error("worker message lost"));
    const bury = await d.request();
    expect(bury.message).toMatchObject({ t: "bury", error: "worker message lost", attempts: 2 });
  });

  for (const code of ["PLT_SERVICE_UNAVAILABLE", "PLT_SHUTTING_DOWN"]) {
    test(`a subscriber that is not there (${code}) stops delivery without using an attempt, until the next offer`, async () => {
      const d = setup({ maxAttempts: 1 });
      d.logs.append("orders", "a");
      d.delivery.resume(new Map(), ["orders"]);
      (await d.batch()).fail(failure(code));
      await d.nothingMore();
      expect(d.logged("event dead-lettered")).toEqual([]);
      d.delivery.offer("orders", d.logs.append("orders", "b"));
      expect((await d.batch()).seqs).toEqual(["orders:1", "orders:2"]);
    });
  }

  test("the subscriber's storage refusing writes is retried without counting attempts, warned about once, with a backoff capped at 5 seconds", async () => {
    const d = setup({ maxAttempts: 2, retryDelayMs: 1_000 });
    d.logs.append("orders", "a", "b");
    d.delivery.resume(new Map(), ["orders"]);
    const waits: number[] = [];
    for (const code of ["PLT_STORAGE_FULL", "PLT_STORAGE_UNAVAILABLE", "PLT_STORAGE_FULL", "PLT_STORAGE_FULL", "PLT_STORAGE_FULL"]) {
      (await d.batch()).answer({ handled: 0, error: failure(code, "disk full").toWire() });
      const s = await d.sleep();
      waits.push(s.ms);
      s.fire();
    }
    expect(waits).toEqual([1_000, 2_000, 4_000, 5_000, 5_000]);
    expect(d.logged("subscriber's storage failing, delivery waits")).toEqual([expect.objectContaining({ level: "warn", subscriber: "sink", error: "disk full" })]);
    expect(d.logged("event dead-lettered")).toEqual([]);
    // Progress ends the stall: the next one starts the backoff (and the warning) again.
    (await d.batch()).answer({ handled: 1, error: failure("PLT_STORAGE_FULL").toWire() });
    expect((await d.sleep()).ms).toBe(1_000);
    expect(d.logged("subscriber's storage failing, delivery waits")).toHaveLength(2);
  });

  test("the storage backoff doubles at most ten times", async () => {
    const d = setup({ retryDelayMs: 1 });
    d.logs.append("orders", "a");
    d.delivery.resume(new Map(), ["orders"]);
    const waits: number[] = [];
    for (let i = 0; i < 12; i++) {
      (await d.batch()).answer({ handled: 0, error: failure("PLT_STORAGE_FULL").toWire() });
      const s = await d.sleep();
      waits.push(s.ms);
      s.fire();
    }
    expect(waits.slice(-3)).toEqual([512, 1_024, 1_024]);
  });

  test("a dead letter the subscriber fails to store is asked for again after a backoff, then the events behind it go on", async () => {
    const d = setup({ maxAttempts: 1, retryDelayMs: 100 });
    d.logs.append("orders", "bad", "next");
    d.delivery.resume(new Map(), ["orders"]);
    (await d.batch()).answer(failedAt(0));
    const waits: number[] = [];
    for (const err of [failure("PLT_TIMEOUT", "busy"), failure("PLT_STORAGE_FULL", "disk full"), new Error("odd")]) {
      const bury = await d.request();
      expect(bury.message).toMatchObject({ t: "bury", attempts: 1 });
      bury.fail(err);
      const s = await d.sleep();
      waits.push(s.ms);
      s.fire();
    }
    expect(waits).toEqual([100, 200, 400]);
    expect(d.logged("dead letter not stored, will retry")).toEqual([expect.objectContaining({ level: "warn", subscriber: "sink", filter: "events/orders/#", id: "orders-1", error: "busy" })]);
    (await d.request()).answer(null);
    expect((await d.batch()).seqs).toEqual(["orders:2"]);
  });

  test("the backoff between requests to store a dead letter stops growing at 30 seconds", async () => {
    const d = setup({ maxAttempts: 1, retryDelayMs: 10_000 });
    d.logs.append("orders", "bad");
    d.delivery.resume(new Map(), ["orders"]);
    (await d.batch()).answer(failedAt(0));
    const waits: number[] = [];
    for (let i = 0; i < 4; i++) {
      (await d.request()).fail(failure("PLT_TIMEOUT"));
      const s = await d.sleep();
      waits.push(s.ms);
      s.fire();
    }
    expect(waits).toEqual([10_000, 20_000, 30_000, 30_000]);
  });

  for (const code of ["PLT_SERVICE_UNAVAILABLE", "PLT_SHUTTING_DOWN"]) {
    test(`a subscriber gone (${code}) while it is asked to store a dead letter stops delivery until the next offer`, async () => {
      const d = setup({ maxAttempts: 1 });
      d.logs.append("orders", "bad");
      d.delivery.resume(new Map(), ["orders"]);
      (await d.batch()).answer(failedAt(0));
      (await d.request()).fail(failure(code));
      await d.nothingMore();
      d.delivery.offer("orders", d.logs.append("orders", "next"));
      expect((await d.batch()).seqs).toEqual(["orders:1", "orders:2"]);
    });
  }
});

describe("any run of failures", () => {
  test("every event is handled once, in order, unless it failed maxAttempts times: then it is dead-lettered once, after exactly those", async () => {
    const script = fc.array(fc.constantFrom("fail" as const, "storage" as const), { maxLength: 5 });
    await checkProperty("delivery outcomes", { runs: 100, ms: 2_000 }, [fc.integer({ min: 1, max: 4 }), fc.array(script, { minLength: 1, maxLength: 12 })], async (maxAttempts, scripts) => {
      const d = setup({ maxAttempts });
      d.logs.append("orders", ...scripts.map((_, i) => `e${i}`));
      const left = scripts.map((s) => [...s]);
      const handled: number[] = [];
      const buried: Array<[number, number]> = [];
      d.delivery.resume(new Map(), ["orders"]);
      // The subscriber: each delivery of an event takes the next step of its script; none left, it is handled.
      for (let steps = 0; handled.length + buried.length < scripts.length; steps++) {
        if (steps > 500) throw new Error("delivery does not end");
        const action = await d.next();
        if (action.kind === "sleep") {
          action.fire();
          continue;
        }
        if (action.message.t === "bury") {
          buried.push([Number(action.message.event.sequence), action.message.attempts]);
          action.answer(null);
          continue;
        }
        if (action.message.t !== "deliver") throw new Error(`unexpected ${action.message.t}`);
        let done = 0;
        let error;
        for (const item of action.message.items) {
          const seq = Number(item.event.sequence);
          const step = left[seq - 1]!.shift();
          if (step) {
            error = failure(step === "storage" ? "PLT_STORAGE_FULL" : "SINK_FAILED").toWire();
            break;
          }
          handled.push(seq);
          done++;
        }
        action.answer({ handled: done, error });
      }
      await d.nothingMore();
      const doomed = (s: string[]) => s.filter((step) => step === "fail").length >= maxAttempts;
      expect(handled).toEqual(scripts.flatMap((s, i) => (doomed(s) ? [] : [i + 1])));
      expect(buried).toEqual(scripts.flatMap((s, i) => (doomed(s) ? [[i + 1, maxAttempts] as [number, number]] : [])));
    });
  });
});

describe("systemTimer", () => {
  test("fires once its time is up; a cancelled one never fires (timers fire in deadline order: the later one is the sentinel)", async () => {
    const fired: string[] = [];
    const cancel = systemTimer(() => fired.push("cancelled"), 1);
    systemTimer(() => fired.push("kept"), 2);
    cancel();
    await new Promise<void>((resolve) => systemTimer(resolve, 20));
    expect(fired).toEqual(["kept"]);
  });
});

describe("pause and resume", () => {
  test("pause before anything was delivered is harmless, and offers while paused are left to the catch-up of resume", async () => {
    const d = setup();
    d.delivery.pause();
    d.delivery.resume(new Map(), ["orders"]);
    d.delivery.pause();
    d.delivery.offer("orders", d.logs.append("orders", "a"));
    await d.nothingMore();
    d.delivery.resume(new Map(), ["orders"]);
    expect((await d.batch()).seqs).toEqual(["orders:1"]);
  });

  test("pause during a backoff ends it at once, cancels its timer, and sends nothing more", async () => {
    const d = setup();
    d.logs.append("orders", "a");
    d.delivery.resume(new Map(), ["orders"]);
    (await d.batch()).answer(failedAt(0));
    const s = await d.sleep();
    d.delivery.pause();
    await d.nothingMore();
    expect(s.cancelled).toBe(true);
    // resume starts again from the subscriber's cursors
    d.delivery.resume(new Map(), ["orders"]);
    expect((await d.batch()).seqs).toEqual(["orders:1"]);
  });

  test("an answer that comes after pause is not acted on", async () => {
    const d = setup();
    d.logs.append("orders", "a");
    d.delivery.resume(new Map(), ["orders"]);
    const b = await d.batch();
    d.delivery.pause();
    b.answer(failedAt(0));
    await d.nothingMore();
    expect(d.logged("event handler failed, will retry")).toEqual([]);
  });

  for (const outcome of [{ handled: 1 }, failedAt(0)] as Array<{ handled: number; error?: unknown }>) {
    test(`resume while a batch is in the subscriber's hands waits for it, then starts from the new cursors (old answer: ${outcome.error ? "failed" : "handled"})`, async () => {
      const d = setup({ maxAttempts: 1 });
      d.logs.append("orders", "a", "b");
      d.delivery.resume(new Map(), ["orders"]);
      const old = await d.batch();
      d.delivery.resume(new Map([["orders", { seq: 1, generation: null }]]), ["orders"]);
      await d.nothingMore(); // one batch at a time
      old.answer(outcome);
      const b = await d.batch();
      expect(b.seqs).toEqual(["orders:2"]);
      b.answer({ handled: 1 });
      await d.nothingMore();
    });
  }

  test("resume while a dead letter is being stored: the stored one is not taken off the new queue", async () => {
    const d = setup({ maxAttempts: 1 });
    d.logs.append("orders", "bad", "b");
    d.delivery.resume(new Map(), ["orders"]);
    (await d.batch()).answer(failedAt(0));
    const bury = await d.request();
    d.delivery.resume(new Map([["orders", { seq: 1, generation: null }]]), ["orders"]);
    bury.answer(null);
    expect((await d.batch()).seqs).toEqual(["orders:2"]);
  });

  test("resume while storing a dead letter fails: no second request to store it from the old run", async () => {
    const d = setup({ maxAttempts: 1 });
    d.logs.append("orders", "bad", "b");
    d.delivery.resume(new Map(), ["orders"]);
    (await d.batch()).answer(failedAt(0));
    const bury = await d.request();
    d.delivery.resume(new Map([["orders", { seq: 1, generation: null }]]), ["orders"]);
    bury.fail(failure("PLT_TIMEOUT"));
    expect((await d.batch()).seqs).toEqual(["orders:2"]);
    await d.nothingMore();
  });

  test("resume during a backoff between requests to store a dead letter: once it ends, the new run starts from the new cursors, head intact", async () => {
    const d = setup({ maxAttempts: 1 });
    d.logs.append("orders", "bad", "b");
    d.delivery.resume(new Map(), ["orders"]);
    (await d.batch()).answer(failedAt(0));
    (await d.request()).fail(failure("PLT_TIMEOUT"));
    const s = await d.sleep();
    d.delivery.resume(new Map([["orders", { seq: 1, generation: null }]]), ["orders"]);
    s.fire();
    expect((await d.batch()).seqs).toEqual(["orders:2"]);
  });

  test("pause during a backoff between requests to store a dead letter ends it and asks no more", async () => {
    const d = setup({ maxAttempts: 1 });
    d.logs.append("orders", "bad");
    d.delivery.resume(new Map(), ["orders"]);
    (await d.batch()).answer(failedAt(0));
    (await d.request()).fail(failure("PLT_TIMEOUT"));
    const s = await d.sleep();
    d.delivery.pause();
    expect(s.cancelled).toBe(true);
    await d.nothingMore();
  });
});

describe("a source's log that went back", () => {
  test("a cursor of another generation at or past the new one's start starts from that start, warned once", async () => {
    const d = setup();
    d.logs.append("orders", "a", "b", "c", "d");
    d.generations.set("orders", { id: "g2", start: 3 });
    const cursors = new Map([["orders", { seq: 3, generation: "g1" }]]);
    d.delivery.resume(cursors, ["orders"]);
    const b = await d.batch();
    expect(b.seqs).toEqual(["orders:3", "orders:4"]);
    b.answer({ handled: 2 });
    d.delivery.resume(cursors, ["orders"]);
    expect((await d.batch()).seqs).toEqual(["orders:3", "orders:4"]);
    expect(d.logged("a source's event log went back")).toEqual([
      expect.objectContaining({ level: "warn", subscriber: "sink", filter: "events/orders/#", source: "orders", why: "its log is at generation g2 since 3, this subscription at 3 of generation g1" }),
    ]);
  });

  test("a cursor below the new generation's start, of the same generation, or older than generations, starts where it is", async () => {
    for (const cursor of [{ seq: 2, generation: "g1" }, { seq: 3, generation: "g2" }, { seq: 3, generation: null }]) {
      const d = setup();
      d.logs.append("orders", "a", "b", "c", "d");
      d.generations.set("orders", { id: "g2", start: 3 });
      d.delivery.resume(new Map([["orders", cursor]]), ["orders"]);
      expect((await d.batch()).seqs).toEqual(Array.from({ length: 4 - cursor.seq }, (_, i) => `orders:${cursor.seq + 1 + i}`));
      expect(d.logged("a source's event log went back")).toEqual([]);
    }
  });

  test("a cursor past the end of its source's log is warned about, once per finding; one at the end is not", async () => {
    const d = setup();
    d.logs.append("orders", "a", "b");
    d.logs.append("stock", "x");
    d.delivery.resume(new Map([["orders", { seq: 2, generation: null }], ["stock", { seq: 1, generation: null }]]), ["orders", "stock"]);
    expect(d.logged("a source's event log went back")).toEqual([]);
    const ahead = new Map([["orders", { seq: 5, generation: null }], ["stock", { seq: 4, generation: null }]]);
    d.delivery.resume(ahead, ["orders", "stock"]);
    d.delivery.resume(ahead, ["orders", "stock"]);
    expect(d.logged("a source's event log went back").map((l) => [l.source, l.why])).toEqual([
      ["orders", "its log ends at 2 but this subscription had handled up to 5: events it handled are no longer in the source's log"],
      ["stock", "its log ends at 1 but this subscription had handled up to 4: events it handled are no longer in the source's log"],
    ]);
    // it waits for the log to pass its cursor
    d.delivery.offer("orders", d.logs.append("orders", "c", "d", "e", "f"));
    expect((await d.batch()).seqs).toEqual(["orders:6"]);
  });

  test("rebase: a new generation starting at or below what was seen is delivered from its start; other sources' queued events stay", async () => {
    const d = setup({ filter: "events/#" });
    d.logs.append("orders", "a", "b", "c");
    d.logs.append("stock", "x");
    d.delivery.resume(new Map(), ["orders", "stock"]);
    const first = await d.batch();
    expect(first.seqs).toEqual(["orders:1", "orders:2", "orders:3", "stock:1"]);
    first.answer(failedAt(2)); // orders:3 and stock:1 still queued
    const backoff = await d.sleep();
    d.generations.set("orders", { id: "g2", start: 3 });
    d.delivery.rebase("orders", { id: "g2", start: 3 });
    expect(d.logged("a source's event log went back")).toEqual([
      expect.objectContaining({ source: "orders", why: "its log started generation g2 at 3, below this subscription's position 3" }),
    ]);
    backoff.fire();
    const b = await d.batch();
    expect(b.seqs).toEqual(["stock:1", "orders:3"]);
    expect((b.message as Deliver).items[1]!.event.generation).toBe("g2");
  });

  test("rebase of a subscription that had delivered everything delivers the new generation from its start", async () => {
    const d = setup();
    d.logs.append("orders", "a", "b", "c");
    d.delivery.resume(new Map(), ["orders"]);
    (await d.batch()).answer({ handled: 3 });
    await d.nothingMore();
    d.delivery.rebase("orders", { id: "g2", start: 2 });
    expect((await d.batch()).seqs).toEqual(["orders:2", "orders:3"]);
  });

  test("rebase: a generation starting past what was seen, or of a source never seen, changes nothing", async () => {
    const d = setup();
    d.logs.append("orders", "a", "b");
    d.delivery.resume(new Map(), ["orders"]);
    const b = await d.batch();
    d.delivery.rebase("orders", { id: "g2", start: 3 });
    d.delivery.rebase("stock", { id: "g2", start: 1 });
    await d.nothingMore();
    b.answer({ handled: 2 });
    await d.nothingMore();
    expect(d.logged("a source's event log went back")).toEqual([]);
  });
});
