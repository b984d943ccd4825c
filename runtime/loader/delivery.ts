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

export class Delivery {
  /** Per source: the highest seq already examined (queued or skipped). */
  private seen = new Map<string, number>();
  private queue: Array<{ source: string; event: CommittedEvent }> = [];
  private active = false;
  private pumping = false;
  /** Bumped by resume(): a pump from before it must not touch the new queue. */
  private generation = 0;
  private wake: (() => void) | null = null;

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

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    const generation = this.generation;
    try {
      while (this.active && this.queue.length > 0 && generation === this.generation) {
        const done = await this.deliver(this.queue[0]!);
        if (!done || generation !== this.generation) return;
        this.queue.shift();
      }
    } finally {
      this.pumping = false;
      // resume() during an old pump: start the new one.
      if (this.active && generation !== this.generation) void this.pump();
    }
  }

  /** true when the event is done with (handled or dead-lettered); false when delivery paused. */
  private async deliver({ source, event }: { source: string; event: CommittedEvent }): Promise<boolean> {
    const envelope = toEnvelope(source, event);
    const topic = Topics.event(source, event.type);
    const { maxAttempts, retryDelayMs, timeoutMs } = this.options;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.target.request({ t: "event", subscription: this.index, topic, event: envelope }, timeoutMs);
        return true;
      } catch (err) {
        const error = PlinthError.from(err);
        if (!this.active || error.code === "PLT_SERVICE_UNAVAILABLE" || error.code === "PLT_SHUTTING_DOWN") return false;
        const fields = { subscriber: this.target.name, filter: this.filter, id: envelope.id, attempt, error: error.message };
        if (attempt >= maxAttempts) {
          this.log.error("event dead-lettered", fields);
          try {
            await this.target.request({ t: "bury", subscription: this.index, topic, event: envelope, error: error.message, attempts: attempt }, timeoutMs);
            return true;
          } catch {
            return false;
          }
        }
        this.log.warn("event handler failed, will retry", fields);
        await this.sleep(Math.min(retryDelayMs * 2 ** (attempt - 1), MAX_RETRY_DELAY_MS));
        if (!this.active) return false;
      }
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
