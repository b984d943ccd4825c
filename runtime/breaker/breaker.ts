/**
 * Circuit breaker. Closed, it opens when, either:
 * - `failureThreshold` calls in a row failed, or
 * - over the rolling window (`windowMs` in `buckets`), with at least `minimumCalls`
 *   calls seen, the failure rate reached `failureRate` or the rate of calls slower
 *   than `slowCallMs` reached `slowCallRate`.
 * Open, it rejects at once for `resetTimeoutMs`, then goes half-open and lets
 * `halfOpenMaxCalls` probes through at a time: a probe that succeeds in time
 * closes it, one that fails or is slow opens it again.
 * Only failures that `isFailure` accepts count: server errors and timeouts,
 * never a caller's 4xx, nor a callee's storage fault (disk full, read-only). Time comes from an injected clock.
 */
import { PlinthError } from "../errors";
import { systemClock, wallTime, type Clock } from "./clock";
import { RollingWindow } from "./window";

export type BreakerState = "closed" | "open" | "half-open";

/** A call the breaker let through: the state and breaker generation it started in, and when. */
export interface Admission {
  generation: number;
  started: number;
  state: BreakerState;
}


export interface BreakerOptions {
  failureThreshold: number;
  resetTimeoutMs: number;
  halfOpenMaxCalls: number;
  windowMs?: number;
  buckets?: number;
  minimumCalls?: number;
  /** 0–1; rates are only judged once `minimumCalls` calls are in the window. */
  failureRate?: number;
  slowCallMs?: number;
  slowCallRate?: number;
}

const WINDOW_DEFAULTS = { windowMs: 10_000, buckets: 10, minimumCalls: 20, failureRate: 0.5, slowCallMs: 5_000, slowCallRate: 1 };

export interface BreakerSnapshot {
  state: BreakerState;
  /** Failures in a row. */
  failures: number;
  /** Outcomes in the rolling window. */
  window: { calls: number; failures: number; slow: number };
  /** When an open breaker lets the next probe through (wall-clock time, ISO 8601), or null. */
  retryAt: string | null;
  opened: number;
}

/** A failure of the callee (5xx or timeout), as opposed to a fault of the caller (4xx). */
export function isFailure(err: unknown): boolean {
  if (!(err instanceof PlinthError)) return true;
  // Load shedding and open breakers elsewhere say nothing about this callee's health.
  if (err.code === "PLT_BREAKER_OPEN" || err.code === "PLT_BULKHEAD_FULL") return false;
  // The callee answered at once and precisely: its storage refuses writes. Opening its breaker would
  // hide that answer behind PLT_BREAKER_OPEN and refuse its reads too, which still work; a slow
  // storage fault still counts as a slow call.
  if (err.code === "PLT_STORAGE_FULL" || err.code === "PLT_STORAGE_UNAVAILABLE") return false;
  return err.status >= 500;
}

export class CircuitBreaker {
  private current: BreakerState = "closed";
  private failures = 0;
  private openedAt = 0;
  private probes = 0;
  private timesOpened = 0;
  private generation = 0;
  private readonly options: Required<BreakerOptions>;
  private readonly window: RollingWindow;

  constructor(
    readonly name: string,
    options: BreakerOptions,
    private readonly clock: Clock = systemClock,
    private readonly onChange: (state: BreakerState, snapshot: BreakerSnapshot) => void = () => {},
  ) {
    this.options = { ...WINDOW_DEFAULTS, ...options };
    this.window = new RollingWindow(this.options.windowMs, this.options.buckets, clock);
  }

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

  /**
   * Lets a call through, or refuses it (PLT_BREAKER_OPEN, returned, not thrown). An admitted call
   * must be reported once to `exit`. A call only counts in the state it started in: a slow call that
   * began while closed cannot close a breaker that has opened since, nor reopen one that is probing.
   */
  enter(): Admission | PlinthError {
    const refused = this.refusal();
    if (refused) return refused;
    const state = this.current;
    if (state === "half-open") this.probes++;
    return { generation: this.generation, started: this.clock.now(), state };
  }

  /** The error a call arriving now would get (PLT_BREAKER_OPEN), or null if it would go through. Takes no probe. */
  refusal(): PlinthError | null {
    const state = this.state;
    if (state === "closed" || (state === "half-open" && this.probes < this.options.halfOpenMaxCalls)) return null;
    return new PlinthError("PLT_BREAKER_OPEN", `circuit breaker for "${this.name}" is open`, {
      data: { service: this.name, retryInMs: Math.max(0, Math.ceil(this.openedAt + this.options.resetTimeoutMs - this.clock.now())) },
    });
  }

  /** How an admitted call ended: `failed` as `isFailure` judges its error. */
  exit(admission: Admission, failed: boolean): void {
    const { generation, started, state } = admission;
    if (generation !== this.generation) return;
    this.settle(failed, started);
    if (state === "half-open" && generation === this.generation) this.probes--;
  }

  /**
   * The one-shot report of an admitted call's end: nothing for success, its error otherwise (only the
   * callee's failures count; a caller's 4xx shows the callee is answering). `done` runs first, with
   * when the call started (the bulkhead frees its slot there, and learns the service's pace); later
   * reports are ignored.
   */
  reporter(admission: Admission, done?: (started: number) => void): (err?: unknown) => void {
    let open = true;
    return (err) => {
      if (!open) return;
      open = false;
      done?.(admission.started);
      this.exit(admission, err !== undefined && isFailure(err));
    };
  }

  /**
   * Runs `fn` if the breaker lets it through; otherwise fails at once with PLT_BREAKER_OPEN.
   * `done` runs once the call is over, either way (the bulkhead frees its slot there: one promise less).
   */
  run<T>(fn: () => Promise<T>, done?: (started?: number) => void): Promise<T> {
    const admission = this.enter();
    if (admission instanceof PlinthError) {
      done?.();
      return Promise.reject(admission);
    }
    const report = this.reporter(admission, done);
    let call: Promise<T>;
    try {
      call = fn();
    } catch (err) {
      call = Promise.reject(err);
    }
    return call.then(
      (value) => (report(), value),
      (err: unknown) => {
        report(err);
        throw err;
      },
    );
  }

  /** Records one call's outcome in the state it started in, and decides whether to change state. */
  private settle(failed: boolean, started: number): void {
    const now = this.clock.now();
    const slow = now - started >= this.options.slowCallMs;
    this.failures = failed ? this.failures + 1 : 0;
    if (this.current === "half-open") return failed || slow ? this.open() : this.transition("closed");
    this.window.record(failed, slow, now);
    const { calls, failures, slow: slowCalls } = this.window.totals(now);
    const { failureThreshold, minimumCalls, failureRate, slowCallRate } = this.options;
    const rated = calls >= minimumCalls;
    if (this.failures >= failureThreshold || (rated && failures / calls >= failureRate) || (rated && slowCalls / calls >= slowCallRate)) {
      this.open();
    }
  }

  private open(): void {
    this.openedAt = this.clock.now();
    this.timesOpened++;
    this.transition("open");
  }

  private describe(): BreakerSnapshot {
    return {
      state: this.current,
      failures: this.failures,
      window: { ...this.window.totals() },
      retryAt: this.current === "open" ? wallTime(this.clock, this.openedAt + this.options.resetTimeoutMs) : null,
      opened: this.timesOpened,
    };
  }

  private transition(to: BreakerState): void {
    this.current = to;
    if (to !== "half-open") this.window.reset();
    this.generation++;
    this.probes = 0;
    this.onChange(to, this.describe());
  }
}
