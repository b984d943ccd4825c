/**
 * Circuit breaker: closed → (failureThreshold failures in a row) → open →
 * (resetTimeoutMs) → half-open → a probe succeeds → closed, or fails → open.
 * Only failures that `isFailure` accepts count: server errors and timeouts,
 * never a caller's 4xx. Time comes from an injected clock.
 */
import { PlinthError } from "../errors";

export type BreakerState = "closed" | "open" | "half-open";

export interface Clock {
  now(): number;
}
export const systemClock: Clock = { now: () => performance.now() };

export interface BreakerOptions {
  failureThreshold: number;
  resetTimeoutMs: number;
  halfOpenMaxCalls: number;
}

export interface BreakerSnapshot {
  state: BreakerState;
  failures: number;
  /** When an open breaker lets the next probe through (clock time), or null. */
  retryAt: number | null;
  opened: number;
}

/** A failure of the callee (5xx or timeout), as opposed to a fault of the caller (4xx). */
export function isFailure(err: unknown): boolean {
  if (!(err instanceof PlinthError)) return true;
  // Load shedding and open breakers elsewhere say nothing about this callee's health.
  if (err.code === "PLT_BREAKER_OPEN" || err.code === "PLT_BULKHEAD_FULL") return false;
  return err.status >= 500;
}

export class CircuitBreaker {
  private current: BreakerState = "closed";
  private failures = 0;
  private openedAt = 0;
  private probes = 0;
  private timesOpened = 0;
  private generation = 0;

  constructor(
    readonly name: string,
    private readonly options: BreakerOptions,
    private readonly clock: Clock = systemClock,
    private readonly onChange: (state: BreakerState, snapshot: BreakerSnapshot) => void = () => {},
  ) {}

  get state(): BreakerState {
    if (this.current === "open" && this.clock.now() - this.openedAt >= this.options.resetTimeoutMs) {
      this.transition("half-open");
    }
    return this.current;
  }

  snapshot(): BreakerSnapshot {
    void this.state; // let a due open → half-open happen first
    return this.describe();
  }

  /** Runs `fn` if the breaker lets it through; otherwise fails at once with PLT_BREAKER_OPEN. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    const state = this.state;
    if (state === "open" || (state === "half-open" && this.probes >= this.options.halfOpenMaxCalls)) {
      throw new PlinthError("PLT_BREAKER_OPEN", `circuit breaker for "${this.name}" is open`, {
        data: { service: this.name, retryInMs: Math.max(0, Math.ceil(this.openedAt + this.options.resetTimeoutMs - this.clock.now())) },
      });
    }
    // A call only counts in the state it started in: a slow call that began while closed
    // cannot close a breaker that has opened since, nor can it reopen one that is probing.
    const generation = this.generation;
    if (state === "half-open") this.probes++;
    try {
      const value = await fn();
      if (generation === this.generation) this.success();
      return value;
    } catch (err) {
      if (generation === this.generation) {
        // Only the callee's failures count; a caller's 4xx shows the callee is answering.
        if (isFailure(err)) this.failure();
        else this.success();
      }
      throw err;
    } finally {
      if (state === "half-open" && generation === this.generation) this.probes--;
    }
  }

  private success(): void {
    this.failures = 0;
    if (this.current === "half-open") this.transition("closed");
  }

  private failure(): void {
    this.failures++;
    if (this.current === "half-open" || this.failures >= this.options.failureThreshold) {
      this.openedAt = this.clock.now();
      this.timesOpened++;
      this.transition("open");
    }
  }

  private describe(): BreakerSnapshot {
    return {
      state: this.current,
      failures: this.failures,
      retryAt: this.current === "open" ? this.openedAt + this.options.resetTimeoutMs : null,
      opened: this.timesOpened,
    };
  }

  private transition(to: BreakerState): void {
    this.current = to;
    this.generation++;
    this.probes = 0;
    this.onChange(to, this.describe());
  }
}
