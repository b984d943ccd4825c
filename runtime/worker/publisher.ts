/**
 * Hands a plugin's committed events to the bus over its events port (channel.ts), straight from the
 * worker: one message per turn (a commit group's events travel together), whatever thread the broker
 * runs on, and one batch on its way at a time: what commits while a batch is answered leaves as the
 * next batch once the answer comes (under load, fewer and larger messages, each waking the broker's
 * thread once; unloaded, no wait). The bus answers each batch with what the broker took, marked sent
 * through `acked`, and what it refused, published again by a relay after a backoff.
 *
 * Without a port (none yet, or the broker went away) events stay unsent in the outbox: the next port
 * relays them. Events on their way (posted, not answered) are not posted twice by a relay.
 *
 * Events of a type the bus said nobody wanted are taken as sent here, without a message, while the
 * broker's SubscriptionClock reads what it read when the bus said so (bus/event-port.ts): a
 * subscription taken since moves the clock, and the next such event goes to the bus again.
 */
import type { Logger } from "../log";
import type { CommittedEvent } from "../protocol";
import { encode, type PublishAck } from "./channel";
import { readClock } from "../broker/subscription-clock";
import { describeThrown } from "./fault";

/** After a refusal the unsent rows are relayed again this long after, doubled per refusal in a row up to RETRY_MAX_MS. */
export const RETRY_MS = 100;
export const RETRY_MAX_MS = 5_000;
/** Event types remembered as wanted by nobody, at most. */
const MAX_QUIET_TYPES = 1_000;

export class Publisher {
  private port: MessagePort | null = null;
  /** Events to post at the end of this turn. */
  private batch: CommittedEvent[] = [];
  /** Posted on the current port and not answered yet, by seq. */
  private readonly inFlight = new Set<number>();
  private idle: (() => void) | null = null;
  private retryTimer: Timer | null = null;
  private retryDelay = RETRY_MS;
  /** A batch was posted and not answered yet: the next one waits for its answer. */
  private awaiting = false;
  /** The broker's SubscriptionClock, once the bus gave it, and the types nobody wanted at which reading. */
  private clock: (() => number) | null = null;
  private readonly quiet = new Map<string, number>();

  constructor(
    /** Seqs the broker took: mark them sent. */
    private readonly acked: (seqs: number[]) => void,
    /** Publish again what is unsent (after a refusal, or on a new port). */
    private readonly relay: () => void,
    private readonly log: () => Pick<Logger, "error">,
  ) {}

  /** Publishes on `port` from now on. What was on its way on the previous one is unsent still: `relay` publishes it again. */
  attach(port: MessagePort, relay: boolean): void {
    this.port?.close();
    this.inFlight.clear();
    this.batch = [];
    this.awaiting = false;
    this.clock = null;
    this.quiet.clear();
    this.port = port;
    port.onmessage = (e) => this.answered(e.data as PublishAck);
    if (relay) this.relay();
    this.settleIdle();
  }

  /** Committed events to publish, in commit order (those already on their way are skipped). */
  publish(events: readonly CommittedEvent[]): void {
    if (!this.port) return;
    const first = this.batch.length === 0;
    const now = this.quiet.size > 0 ? this.clock!() : undefined;
    let unwanted: number[] | undefined;
    for (const e of events) {
      if (this.inFlight.has(e.seq)) continue;
      if (now !== undefined && this.quiet.get(e.type) === now) {
        (unwanted ??= []).push(e.seq);
        continue;
      }
      this.inFlight.add(e.seq);
      this.batch.push(e);
    }
    if (unwanted) this.acked(unwanted);
    if (first && this.batch.length > 0 && !this.awaiting) queueMicrotask(() => this.flush());
  }

  /** Resolves once nothing is on its way (every batch answered), or after `timeoutMs`. */
  whenIdle(timeoutMs: number): Promise<void> {
    if (this.inFlight.size === 0 || !this.port) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.idle = done;
    });
  }

  /** Stops publishing: events committed from now on stay unsent. */
  close(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.port?.close();
    this.port = null;
    this.awaiting = false;
    this.clock = null;
    this.quiet.clear();
    this.inFlight.clear();
    this.settleIdle();
  }

  private flush(): void {
    const events = this.batch;
    this.batch = [];
    if (events.length === 0 || !this.port) return;
    try {
      this.port.postMessage(encode({ events }));
      this.awaiting = true;
    } catch (err) {
      // Rows written before event data was bounded: they stay unsent.
      for (const e of events) this.inFlight.delete(e.seq);
      this.log().error("committed events cannot be sent", { from: events[0]!.seq, error: describeThrown(err) });
      this.settleIdle();
    }
  }

  private answered(ack: PublishAck): void {
    this.awaiting = false;
    this.flush();
    for (const seq of ack.sent) this.inFlight.delete(seq);
    for (const seq of ack.unsent) this.inFlight.delete(seq);
    if (ack.quiet?.clock) this.clock = readClock(ack.quiet.clock);
    if (ack.quiet && this.clock) {
      // Types are the plugin's to name: a plugin minting them without end forgets them, not grows them.
      if (this.quiet.size > MAX_QUIET_TYPES) this.quiet.clear();
      for (const type of ack.quiet.types) this.quiet.set(type, ack.quiet.at);
    }
    if (ack.sent.length > 0) this.acked(ack.sent);
    if (ack.unsent.length > 0) this.retryLater(ack.unsent.length, ack.error ?? "refused");
    else this.retryDelay = RETRY_MS;
    this.settleIdle();
  }

  /**
   * Relays the unsent rows again after a backoff (one relay pending at a time, so refusals in a row
   * cost one timer): nothing else would publish them before the next port. At least once: rows
   * published meanwhile may go out twice.
   */
  private retryLater(count: number, error: string): void {
    if (this.retryTimer) return;
    const delay = this.retryDelay;
    this.retryDelay = Math.min(delay * 2, RETRY_MAX_MS);
    this.log().error("publishing events failed, relaying again", { count, inMs: delay, error });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.port) this.relay();
    }, delay);
  }

  private settleIdle(): void {
    if (this.inFlight.size > 0 || !this.idle) return;
    const idle = this.idle;
    this.idle = null;
    idle();
  }
}
