/**
 * Requests in flight to one worker, each with its timeout. One sweep timer
 * (every 10 ms, only while something is in flight) times them out, instead of
 * a timer per request on the hot path.
 */
import { PlinthError } from "../errors";
import type { Identity } from "../protocol";

/** Who a request acts for and until when: what the calls its handler makes inherit. */
export interface RequestOrigin {
  identity: Identity | null;
  /** Date.now() ms; Infinity: none. */
  deadline: number;
}

interface Waiter {
  resolve: (value: unknown) => void;
  reject: (error: PlinthError) => void;
  /** performance.now() after which the request times out. */
  expires: number;
  timeoutMs: number;
  origin?: RequestOrigin;
  /** Told how the request ended (no argument: answered), before its promise settles. */
  report?: (err?: PlinthError) => void;
}

const SWEEP_MS = 10;

export class PendingRequests {
  private readonly waiters = new Map<number, Waiter>();
  private sweeper: Timer | null = null;
  private next = 1;

  constructor(private readonly label: () => string) {}

  get size(): number {
    return this.waiters.size;
  }

  /** A new request id and the promise its answer settles. */
  open(timeoutMs: number, origin?: RequestOrigin, report?: (err?: PlinthError) => void): { id: number; answer: Promise<unknown> } {
    const id = this.next++;
    const answer = new Promise<unknown>((resolve, reject) => {
      this.waiters.set(id, { resolve, reject, expires: performance.now() + timeoutMs, timeoutMs, origin, report });
    });
    if (!this.sweeper) {
      this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
      this.sweeper.unref();
    }
    return { id, answer };
  }

  /** The origin request `id` was sent with, while it is in flight. */
  originOf(id: number): RequestOrigin | undefined {
    return this.waiters.get(id)?.origin;
  }

  /** Settles request `id` (ignored if it already timed out). */
  settle(id: number, outcome: { ok: true; value: unknown } | { ok: false; error: PlinthError }): boolean {
    const waiter = this.waiters.get(id);
    if (!waiter) return false;
    this.waiters.delete(id);
    if (outcome.ok) {
      waiter.report?.();
      waiter.resolve(outcome.value);
    } else {
      waiter.report?.(outcome.error);
      waiter.reject(outcome.error);
    }
    return true;
  }

  failAll(error: PlinthError): void {
    for (const waiter of this.waiters.values()) {
      waiter.report?.(error);
      waiter.reject(error);
    }
    this.waiters.clear();
  }

  /** Resolves once nothing is in flight (or after timeoutMs). */
  async drained(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.waiters.size > 0 && performance.now() < deadline) await Bun.sleep(5);
  }

  private sweep(): void {
    const now = performance.now();
    for (const [id, waiter] of this.waiters) {
      if (waiter.expires > now) continue;
      this.waiters.delete(id);
      const error = new PlinthError("PLT_TIMEOUT", `service "${this.label()}" did not answer within ${waiter.timeoutMs} ms`);
      waiter.report?.(error);
      waiter.reject(error);
    }
    if (this.waiters.size === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
  }
}
