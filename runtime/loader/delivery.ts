/**
 * Durable delivery of service events to one subscription of one plugin.
 * Events come in commit order per source service; each is handed to the
 * subscriber in that order, retried with exponential backoff when its handler
 * fails, and dead-lettered (stored in the subscriber's database) after
 * `maxAttempts`. While the subscriber is down nothing is lost: on resume it
 * starts again from its own cursors and catches up from the sources' logs.
 * A source's log that went back (storage/generation.ts) is noticed, logged
 * once, and its new generation delivered from its start instead of skipped.
 */
import { PlinthError } from "../errors";
import type { Logger } from "../log";
import { Topics, toEnvelope, topicMatches, type CommittedEvent } from "../protocol";
import type { LogGeneration } from "../storage/generation";
import type { DeliveryOutcome } from "../worker/channel";
import type { HostRequest } from "../worker/host";
import type { Cursor } from "../worker/inbox";
import type { EventLogSource } from "./logs";

export interface DeliveryTarget {
  readonly name: string;
  request(message: HostRequest, timeoutMs: number): Promise<unknown>;
}

/** Where delivery reads what a subscriber missed: the sources' logs (logs.ts). */
export type EventSource = Pick<EventLogSource, "read" | "head" | "generation">;

/** Calls `fire` once after `ms`; the function returned cancels it. Injectable so that tests need no sleeping. */
export type Timer = (fire: () => void, ms: number) => () => void;

export const systemTimer: Timer = (fire, ms) => {
  const timer = setTimeout(fire, ms);
  return () => clearTimeout(timer);
};

export interface DeliveryOptions {
  maxAttempts: number;
  retryDelayMs: number;
  timeoutMs: number;
}

const MAX_RETRY_DELAY_MS = 30_000;
const MAX_BATCH_TIMEOUT_MS = 60_000;
/** Events per message to the subscriber: one round trip for many events. */
const BATCH = 64;
/** Events queued for a subscriber past which another node's log is not read further for now. */
const QUEUE_FULL = 1_000;
const UNAVAILABLE = new Set(["PLT_SERVICE_UNAVAILABLE", "PLT_SHUTTING_DOWN"]);
/** The subscriber's own store cannot take writes: the event is not at fault, so it is retried without counting an attempt. */
const STORAGE = new Set(["PLT_STORAGE_FULL", "PLT_STORAGE_UNAVAILABLE"]);

export class Delivery {
  /** Per source: the highest seq already examined (queued or skipped). */
  private seen = new Map<string, number>();
  private queue: Array<{ source: string; event: CommittedEvent }> = [];
  private active = false;
  private pumping = false;
  /** Bumped by resume(): a pump from before it must not touch the new queue. */
  private generation = 0;
  private wake: (() => void) | null = null;
  /** The batch (or dead letter) in the subscriber's hands, until it answers (or fails). */
  private sending: Promise<unknown> | null = null;
  private readonly warned = new Set<string>();

  constructor(
    private readonly target: DeliveryTarget,
    private readonly index: number,
    readonly filter: string,
    private readonly logs: EventSource,
    private readonly options: DeliveryOptions,
    private readonly log: Logger,
    private readonly timer: Timer = systemTimer,
  ) {}

  /** The subscriber is ready: start from its cursors (by source) and catch up on every source's log. */
  resume(cursors: Map<string, Pick<Cursor, "seq" | "generation">>, sources: Iterable<string>): void {
    this.active = true;
    this.generation++;
    this.queue = [];
    this.seen = new Map();
    for (const [source, cursor] of cursors) this.seen.set(source, this.startOf(source, cursor));
    for (const source of new Set([...sources, ...cursors.keys()])) this.catchUp(source, Number.POSITIVE_INFINITY);
    void this.pump();
  }

  /**
   * A source's log started a new generation while this subscription runs: what it has seen of the
   * source from that start on belonged to the old one, so the new one is delivered from its start.
   */
  rebase(source: string, generation: LogGeneration): void {
    const seen = this.seen.get(source);
    if (seen === undefined || seen < generation.start) return;
    this.warnBack(source, `its log started generation ${generation.id} at ${generation.start}, below this subscription's position ${seen}`);
    this.seen.set(source, generation.start - 1);
    this.queue = this.queue.filter((q) => q.source !== source);
    this.catchUp(source, Number.POSITIVE_INFINITY);
    void this.pump();
  }

  /** Where delivery of `source` starts for a cursor: its position, unless the source's log went back under it. */
  private startOf(source: string, cursor: Pick<Cursor, "seq" | "generation">): number {
    const generation = this.logs.generation(source);
    if (generation && cursor.generation !== null && cursor.generation !== generation.id && cursor.seq >= generation.start) {
      this.warnBack(source, `its log is at generation ${generation.id} since ${generation.start}, this subscription at ${cursor.seq} of generation ${cursor.generation}`);
      return generation.start - 1;
    }
    const head = this.logs.head(source);
    if (cursor.seq > head) this.warnBack(source, `its log ends at ${head} but this subscription had handled up to ${cursor.seq}: events it handled are no longer in the source's log`);
    return cursor.seq;
  }

  /** Logged once per source and finding. */
  private warnBack(source: string, why: string): void {
    const key = `${source} ${why}`;
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.log.warn("a source's event log went back", { subscriber: this.target.name, filter: this.filter, source, why });
  }

  /** The subscriber is down or stopping: stop delivering (resume rebuilds the queue). */
  pause(): void {
    this.active = false;
    this.wake?.();
  }

  /**
   * Resolves once no batch is in the subscriber's hands, as far as this side knows: a batch it
   * stopped waiting for (a timeout) may still be running there; the worker then runs the next
   * batch of the same subscription only after it (entry.ts `inTurn`).
   */
  async settled(): Promise<void> {
    await this.sending; // send() and bury() never reject
  }

  /**
   * Where this subscription stands in `source`'s log (the highest seq it examined), to read the log on
   * from there; null while it is paused or its queue is long (read later, not all into memory now).
   */
  position(source: string): number | null {
    if (!this.active || this.queue.length >= QUEUE_FULL) return null;
    return this.seen.get(source) ?? 0;
  }

  /** Newly committed events of `source`, in commit order. */
  offer(source: string, events: CommittedEvent[]): void {
    if (!this.active) return;
    for (const event of events) {
      const seen = this.seen.get(source) ?? 0;
      if (event.seq <= seen) continue;
      if (event.seq > seen + 1) this.catchUp(source, event.seq - 1);
      this.consider(source, event);
    }
    void this.pump();
  }

  private catchUp(source: string, upTo: number): void {
    for (;;) {
      const batch = this.logs.read(source, this.seen.get(source) ?? 0);
      for (const event of batch) {
        if (event.seq > upTo) return;
        this.consider(source, event);
      }
      if (batch.length === 0) return;
    }
  }

  private consider(source: string, event: CommittedEvent): void {
    this.seen.set(source, event.seq);
    if (topicMatches(this.filter, Topics.event(source, event.type))) this.queue.push({ source, event });
  }

  /**
   * Hands the queue to the subscriber in batches. A batch stops at the first event whose handler
   * fails; that event is retried (after a backoff) until maxAttempts, then dead-lettered.
   */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    const generation = this.generation;
    const current = () => this.active && generation === this.generation;
    let attempts = 0;
    let stalls = 0;
    try {
      while (current() && this.queue.length > 0) {
        const batch = this.queue.slice(0, BATCH);
        const outcome = await this.track(this.send(batch));
        if (!outcome || !current()) return;
        this.queue.splice(0, outcome.handled);
        if (outcome.handled > 0) attempts = stalls = 0;
        if (!outcome.error) continue;
        if (STORAGE.has(outcome.error.code)) {
          if (stalls++ === 0) this.log.warn("subscriber's storage failing, delivery waits", { subscriber: this.target.name, filter: this.filter, error: outcome.error.message });
          await this.sleep(Math.min(this.options.retryDelayMs * 2 ** Math.min(stalls - 1, 10), MAX_RETRY_DELAY_MS / 6));
          continue;
        }

        attempts++;
        const failed = this.queue[0]!;
        const fields = { subscriber: this.target.name, filter: this.filter, id: failed.event.id, attempt: attempts, error: outcome.error.message };
        if (attempts >= this.options.maxAttempts) {
          this.log.error("event dead-lettered", fields);
          if (!(await this.buried(failed, outcome.error.message, attempts, current))) return;
          this.queue.shift();
          attempts = 0;
        } else {
          this.log.warn("event handler failed, will retry", fields);
          await this.sleep(Math.min(this.options.retryDelayMs * 2 ** (attempts - 1), MAX_RETRY_DELAY_MS));
        }
      }
    } finally {
      this.pumping = false;
      // resume() during an old pump: start the new one.
      if (this.active && generation !== this.generation) void this.pump();
    }
  }

  /** What is in the subscriber's hands, for settled(). */
  private async track<T>(work: Promise<T>): Promise<T> {
    this.sending = work;
    try {
      return await work;
    } finally {
      this.sending = null;
    }
  }

  /** Sends a batch; null when the subscriber is unavailable (delivery resumes when it is back). */
  private async send(batch: Array<{ source: string; event: CommittedEvent }>): Promise<DeliveryOutcome | null> {
    const items = batch.map(({ source, event }) => ({ topic: Topics.event(source, event.type), event: toEnvelope(source, event, this.logs.generation(source)) }));
    try {
      const timeoutMs = Math.min(this.options.timeoutMs * items.length, MAX_BATCH_TIMEOUT_MS);
      return (await this.target.request({ t: "deliver", subscription: this.index, items }, timeoutMs)) as DeliveryOutcome;
    } catch (err) {
      const error = PlinthError.from(err);
      if (UNAVAILABLE.has(error.code)) return null;
      // e.g. a timeout: the head counts as failed; events already handled are skipped by the cursor.
      return { handled: 0, error: error.toWire() };
    }
  }

  /**
   * Stores the dead letter, asking again after a backoff while the subscriber fails to (a timeout:
   * it takes the request only once the batch it was given up on is done; its storage refusing
   * writes). True once stored; false when the subscriber is unavailable or this pump is stale
   * (resume() starts from the subscriber's cursors again).
   */
  private async buried(failed: { source: string; event: CommittedEvent }, error: string, attempts: number, current: () => boolean): Promise<boolean> {
    for (let tries = 1; current(); tries++) {
      const outcome = await this.track(this.bury(failed, error, attempts));
      if (outcome === null || !current()) return false;
      if (outcome === true) return true;
      if (tries === 1) this.log.warn("dead letter not stored, will retry", { subscriber: this.target.name, filter: this.filter, id: failed.event.id, error: outcome.message });
      await this.sleep(Math.min(this.options.retryDelayMs * 2 ** (tries - 1), MAX_RETRY_DELAY_MS));
    }
    return false;
  }

  /** Asks the subscriber to store a dead letter: true once stored, null when it is unavailable, else why it failed. */
  private async bury({ source, event }: { source: string; event: CommittedEvent }, error: string, attempts: number): Promise<true | PlinthError | null> {
    const topic = Topics.event(source, event.type);
    try {
      await this.target.request({ t: "bury", subscription: this.index, topic, event: toEnvelope(source, event, this.logs.generation(source)), error, attempts }, this.options.timeoutMs);
      return true;
    } catch (err) {
      const failure = PlinthError.from(err);
      return UNAVAILABLE.has(failure.code) ? null : failure;
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const cancel = this.timer(done, ms);
      function done() {
        cancel();
        resolve();
      }
      this.wake = done;
    });
  }
}
