/**
 * Bulkhead: at most `limit` calls into a service at once (fixed at `maxConcurrent`, or adaptive
 * between `minConcurrent` and it: see ConcurrencyLimit), more waiting in a queue bounded by time,
 * and PLT_BULKHEAD_FULL (503, saying when to retry) for what could not start in time:
 * - at once, when its deadline is too close to wait at all, or `maxQueue` calls wait already (a
 *   bound on memory);
 * - in the queue, once a call has waited `maxQueueMs` or could no longer finish by its deadline: it
 *   is answered then, and never reaches the service late.
 * The queue is served oldest first while it can drain within the budget at the service's pace.
 * Once it cannot (it stands), newest first: under sustained overload the calls served are those
 * with the most time left, and the oldest are shed as their time runs out (adaptive LIFO).
 * Rejecting costs no more than it must: one error per bulkhead, built once.
 */
import { PlinthError } from "../errors";
import { systemClock, type Clock } from "./clock";
import { ConcurrencyLimit } from "./limit";

export interface BulkheadOptions {
  maxConcurrent: number;
  maxQueue: number;
  /** The floor of the adaptive limit (default 1). */
  minConcurrent?: number;
  /** The limit follows what the service sustains (default false: fixed at maxConcurrent). */
  adaptive?: boolean;
  /** The longest a call may wait for a slot (default: no bound but its deadline). */
  maxQueueMs?: number;
}

interface Waiter {
  /** Starts the call; its slot is already counted. */
  grant: () => void;
  refuse: (err: PlinthError) => void;
  queuedAt: number;
  expires: number;
  /** Still waiting (neither granted, nor refused). */
  live: boolean;
}

/** How often queued calls are checked for expiry, while any wait. */
const SWEEP_MS = 50;
/** Retry-After when the queue has no time bound. */
const RETRY_MS = 1_000;

export class Bulkhead {
  readonly limit: ConcurrencyLimit;
  private active = 0;
  /** Waiters, oldest first, from `head`; refused ones stay until passed over or swept. */
  private waiting: Waiter[] = [];
  private head = 0;
  private queued = 0;
  private dispatching = false;
  private sweeper: Timer | null = null;
  private readonly budget: number;
  private readonly full: PlinthError;

  constructor(
    readonly name: string,
    private readonly options: BulkheadOptions,
    private readonly clock: Clock = systemClock,
  ) {
    this.limit = new ConcurrencyLimit({ max: options.maxConcurrent, min: options.minConcurrent ?? 1, adaptive: options.adaptive ?? false });
    this.budget = options.maxQueueMs ?? Number.POSITIVE_INFINITY;
    const retryInMs = Number.isFinite(this.budget) ? this.budget : RETRY_MS;
    this.full = new PlinthError("PLT_BULKHEAD_FULL", `service "${name}" is at capacity`, { data: { service: name, retryInMs } });
  }

  get load(): { active: number; queued: number; limit: number } {
    return { active: this.active, queued: this.queued, limit: this.limit.current };
  }

  /** Takes a free slot if there is one (the caller must then call `release` exactly once). */
  tryAcquire(): boolean {
    if (this.active >= this.limit.current) return false;
    this.active++;
    return true;
  }

  /**
   * The error a call arriving now would get at once (the queue holds `maxQueue` calls), or null if
   * it would run or wait. Changes nothing. A long queue does not refuse newcomers: it is served
   * newest first, so a call arriving now starts next and the oldest are shed as their time runs out.
   * Refusing the newcomer instead would shorten no one's wait, and a client that sends again as soon
   * as it is answered would be back to be refused on every turn of the gateway, each refusal costing
   * the main thread about what an answer costs.
   */
  refusal(): PlinthError | null {
    if (this.active < this.limit.current || this.queued < this.options.maxQueue) return null;
    return this.full;
  }

  /**
   * Queues a call that found no free slot: `grant` runs it when a slot is handed over, `refuse` once
   * it has waited too long. Returns the refusal instead when it cannot wait at all.
   * `deadline`: when the caller stops waiting (epoch ms), if it has one.
   */
  enqueue(grant: () => void, refuse: (err: PlinthError) => void, deadline?: number): PlinthError | null {
    const refused = this.refusal();
    if (refused) return refused;
    const now = this.clock.now();
    let expires = now + this.budget;
    if (deadline !== undefined && Number.isFinite(deadline)) {
      // Started later than its deadline less a round trip, it could not answer in time.
      const left = deadline - (this.clock.epoch ? this.clock.epoch() : Date.now()) - this.limit.rtt;
      if (left <= 0) return this.full;
      expires = Math.min(expires, now + left);
    }
    this.waiting.push({ grant, refuse, queuedAt: now, expires, live: true });
    this.queued++;
    if (!this.sweeper && Number.isFinite(expires)) this.sweeper = setInterval(() => this.sweep(), SWEEP_MS).unref();
    return null;
  }

  run<T>(fn: () => Promise<T>, deadline?: number): Promise<T> {
    if (this.tryAcquire()) return this.started(fn);
    return new Promise<T>((resolve, reject) => {
      const refused = this.enqueue(() => void this.started(fn).then(resolve, reject), reject, deadline);
      if (refused) reject(refused);
    });
  }

  /**
   * Frees a slot (`started`: when its call began, on this bulkhead's clock, to learn the service's
   * pace from) and hands free slots to waiting calls. Calls that end while it hands them over (a
   * call refused at once) only free their slot: the loop here goes on, nothing recurses.
   */
  readonly release = (started?: number): void => {
    let now = Number.NaN;
    if (started !== undefined) {
      now = this.clock.now();
      this.limit.sample(now - started, this.active, now);
    }
    this.active--;
    if (this.dispatching || this.queued === 0) return;
    this.dispatching = true;
    try {
      if (Number.isNaN(now)) now = this.clock.now();
      while (this.active < this.limit.current && this.queued > 0) {
        const waiter = this.next(now);
        if (!waiter) break;
        this.active++;
        waiter.grant();
      }
    } finally {
      this.dispatching = false;
    }
  };

  /** Refuses every waiting call that has expired; stops the sweep when nothing waits. */
  sweep(now = this.clock.now()): void {
    let passed = 0;
    for (let i = this.head; i < this.waiting.length; i++) {
      const w = this.waiting[i]!;
      if (w.live && w.expires <= now) this.refuse(w);
      if (!w.live) passed++;
    }
    if (passed > 0) {
      this.waiting = this.waiting.slice(this.head).filter((w) => w.live);
      this.head = 0;
    }
    if (this.queued === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
  }

  private started<T>(fn: () => Promise<T>): Promise<T> {
    const started = this.clock.now();
    let call: Promise<T>;
    try {
      call = fn();
    } catch (err) {
      call = Promise.reject(err);
    }
    return call.finally(() => this.release(started));
  }

  /** The waiting call to start next (expired ones met on the way are refused), or undefined. */
  private next(now: number): Waiter | undefined {
    while (this.queued > 0) {
      const oldest = this.oldest();
      if (!oldest) return undefined;
      // A standing queue: newest first (the oldest wait on, and are shed when their time is up).
      const waiter = this.standing() ? this.newest() : oldest;
      if (!waiter) return undefined;
      if (waiter === oldest) this.head++;
      else this.waiting.pop();
      if (this.head > 1_024 && this.head * 2 > this.waiting.length) {
        this.waiting = this.waiting.slice(this.head);
        this.head = 0;
      }
      this.queued--;
      waiter.live = false;
      if (waiter.expires > now) return waiter;
      waiter.refuse(this.full);
    }
    return undefined;
  }

  /**
   * The queue stands: the calls in it could not all start within the budget (each slot frees about
   * once per round trip: they drain at limit / rtt). Oldest first would then make every one of them
   * wait about the budget; newest first serves most of them at once and sheds the oldest.
   */
  private standing(): boolean {
    return (this.queued * this.limit.rtt) / this.limit.current > this.budget;
  }

  private oldest(): Waiter | undefined {
    while (this.head < this.waiting.length && !this.waiting[this.head]!.live) this.head++;
    return this.waiting[this.head];
  }

  private newest(): Waiter | undefined {
    while (this.waiting.length > this.head && !this.waiting[this.waiting.length - 1]!.live) this.waiting.pop();
    return this.waiting[this.waiting.length - 1];
  }

  private refuse(waiter: Waiter): void {
    waiter.live = false;
    this.queued--;
    waiter.refuse(this.full);
  }
}
