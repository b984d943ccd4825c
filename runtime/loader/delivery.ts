/**
 * Durable delivery of service events to one subscription of one plugin.
 * Events come in commit order per source service; each is handed to the
 * subscriber in that order, retried with exponential backoff when its handler
 * fails, and dead-lettered (stored in the subscriber's database) after
 * `maxAttempts`. While the subscriber is down nothing is lost: on resume it
 * starts again from its own cursors and catches up from the sources' logs.
 */
import { PlinthError } from "../errors";
import type { Logger } from "../log";
import { Topics, toEnvelope, topicMatches, type CommittedEvent } from "../protocol";
import type { DeliveryOutcome } from "../worker/channel";
import type { HostRequest } from "../worker/host";
import type { EventLogs } from "./logs";

export interface DeliveryTarget {
  readonly name: string;
  request(message: HostRequest, timeoutMs: number): Promise<unknown>;
}

export interface DeliveryOptions {
  maxAttempts: number;
  retryDelayMs: number;
  timeoutMs: number;
}

const MAX_RETRY_DELAY_MS = 30_000;
const MAX_BATCH_TIMEOUT_MS = 60_000;
/** Events per message to the subscriber: one round trip for many events. */
const BATCH = 64;
const UNAVAILABLE = new Set(["PLT_SERVICE_UNAVAILABLE", "PLT_SHUTTING_DOWN"]);

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

  constructor(
    private readonly target: DeliveryTarget,
    private readonly index: number,
    readonly filter: string,
    private readonly logs: EventLogs,
    private readonly options: DeliveryOptions,
    private readonly log: Logger,
  ) {}

  /** The subscriber is ready: start from its cursors and catch up on every source's log. */
  resume(cursors: Map<string, number>, sources: Iterable<string>): void {
    this.active = true;
    this.generation++;
    this.queue = [];
    this.seen = new Map(cursors);
    for (const source of new Set([...sources, ...cursors.keys()])) this.catchUp(source, Number.POSITIVE_INFINITY);
    void this.pump();
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
    try {
      while (current() && this.queue.length > 0) {
        const batch = this.queue.slice(0, BATCH);
        const outcome = await this.track(this.send(batch));
        if (!outcome || !current()) return;
        this.queue.splice(0, outcome.handled);
        if (outcome.handled > 0) attempts = 0;
        if (!outcome.error) continue;

        attempts++;
        const failed = this.queue[0]!;
        const fields = { subscriber: this.target.name, filter: this.filter, id: failed.event.id, attempt: attempts, error: outcome.error.message };
        if (attempts >= this.options.maxAttempts) {
          this.log.error("event dead-lettered", fields);
          if (!(await this.track(this.bury(failed, outcome.error.message, attempts))) || !current()) return;
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
    const items = batch.map(({ source, event }) => ({ topic: Topics.event(source, event.type), event: toEnvelope(source, event) }));
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

  private async bury({ source, event }: { source: string; event: CommittedEvent }, error: string, attempts: number): Promise<boolean> {
    const topic = Topics.event(source, event.type);
    try {
      await this.target.request({ t: "bury", subscription: this.index, topic, event: toEnvelope(source, event), error, attempts }, this.options.timeoutMs);
      return true;
    } catch {
      return false;
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}
