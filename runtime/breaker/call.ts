/**
 * Every cross-service call (service → service, gateway → service) goes through
 * `Breakers.guard`: per target service, a bulkhead (concurrency limit with a
 * bounded queue) around a circuit breaker, and for idempotent actions retries
 * with backoff and jitter within the call's deadline. The call itself (and its
 * timeout) is the caller's `fn`; this file decides whether and when it runs.
 */
import { PlinthError } from "../errors";
import { SERVICE_NAME } from "../protocol";
import { CircuitBreaker, isFailure, type BreakerOptions, type BreakerSnapshot, type BreakerState } from "./breaker";
import { epochNow, systemClock, type Clock } from "./clock";
import { Bulkhead, type BulkheadOptions } from "./bulkhead";

export interface CallTarget {
  service: string;
  action: string;
}

const parsed = new Map<string, CallTarget>();

/** Splits `"service.action"`; the action may itself contain dots. Remembers the targets it has seen (a few hundred at most). */
export function parseTarget(target: unknown): CallTarget {
  const known = typeof target === "string" ? parsed.get(target) : undefined;
  if (known) return known;
  const result = splitTarget(target);
  if (parsed.size < 1_000) parsed.set(target as string, result);
  return result;
}

function splitTarget(target: unknown): CallTarget {
  if (typeof target === "string") {
    const dot = target.indexOf(".");
    const service = target.slice(0, dot);
    const action = target.slice(dot + 1);
    if (dot > 0 && action.length > 0 && (SERVICE_NAME.test(service) || service === "$node")) return { service, action };
  }
  throw new PlinthError("PLT_BAD_REQUEST", `call target must be "service.action", got ${JSON.stringify(target)}`);
}

/** Starts a reported call in a slot it holds: the breaker may still refuse it (the slot is then freed). */
function startReported<T>(bulkhead: Bulkhead, breaker: CircuitBreaker, start: (report: Report) => Promise<T>): Promise<T> {
  const admission = breaker.enter();
  if (admission instanceof PlinthError) {
    bulkhead.release();
    return Promise.reject(admission);
  }
  const report = breaker.reporter(admission, bulkhead.release);
  try {
    return start(report);
  } catch (err) {
    report(err);
    return Promise.reject(err);
  }
}

export type BreakerListener = (service: string, state: BreakerState, snapshot: BreakerSnapshot) => void;

/** How a reported call ended: no argument for success, its error otherwise. */
export type Report = (err?: unknown) => void;

export interface RetryOptions {
  /** Extra attempts after the first (0: none). */
  retries: number;
  /** Base delay; doubles per retry, with ±50% jitter. */
  retryDelayMs: number;
  /** Absolute time (epoch ms, the clock's wall clock) after which no attempt starts. */
  deadline: number;
}

/**
 * Settings that differ from the defaults for one target: `"service"`, or `"service.action"` for an
 * action with a breaker of its own (undefined: the action shares its service's breaker).
 */
export type BreakerOverrides = (target: string) => Partial<BreakerOptions> | undefined;

export class Breakers {
  /** By target: a service, or "service.action" for actions with settings of their own. */
  private readonly byTarget = new Map<string, CircuitBreaker>();
  private readonly bulkheads = new Map<string, Bulkhead>();
  /** service → action ("" for none) → its breaker (settings are read once, at first use). */
  private readonly resolved = new Map<string, Map<string, CircuitBreaker>>();

  constructor(
    private readonly options: BreakerOptions,
    private readonly clock: Clock = systemClock,
    private readonly listener: BreakerListener = () => {},
    private readonly bulkhead: BulkheadOptions = { maxConcurrent: Number.POSITIVE_INFINITY, maxQueue: 0 },
    private readonly overrides: BreakerOverrides = () => undefined,
  ) {}

  /** The breaker for `service`, or for `service.action` when that action has settings of its own. */
  get(service: string, action = ""): CircuitBreaker {
    // Two-level lookup: no string is built on the call path once a target is known.
    let byAction = this.resolved.get(service);
    if (!byAction) this.resolved.set(service, (byAction = new Map()));
    let breaker = byAction.get(action);
    if (breaker) return breaker;
    const key = action ? `${service}.${action}` : service;
    const settings = action ? this.overrides(key) : undefined;
    const target = settings ? key : service;
    breaker = this.byTarget.get(target);
    if (!breaker) {
      const options = { ...this.options, ...this.overrides(service), ...settings };
      // A breaker forgotten since (its service retired or replaced) may still see its last calls end: its
      // transitions are no longer the service's, and are not reported.
      const created: CircuitBreaker = new CircuitBreaker(target, options, this.clock, (state, snapshot) => {
        if (this.byTarget.get(target) === created) this.listener(target, state, snapshot);
      });
      this.byTarget.set(target, (breaker = created));
    }
    byAction.set(action, breaker);
    return breaker;
  }

  /**
   * As `guard` without retries, for a call that reports its own end: `start` gets a `report(err?)` to
   * call once, when the call settles (the pending request does, on its answer, timeout or the
   * worker's crash). The layer then adds no promise of its own. A full bulkhead queues it as `guard`
   * does; `deadline` (epoch ms) is when its caller stops waiting.
   */
  guardReported<T>(service: string, start: (report: Report) => Promise<T>, action?: string, deadline?: number): Promise<T> {
    const bulkhead = this.bulkheadOf(service);
    const breaker = this.get(service, action);
    if (bulkhead.tryAcquire()) return startReported(bulkhead, breaker, start);
    return new Promise<T>((resolve, reject) => {
      const refused = bulkhead.enqueue(() => void startReported(bulkhead, breaker, start).then(resolve, reject), reject, deadline);
      if (refused) reject(refused);
    });
  }

  /** Runs `fn` behind the service's bulkhead and breaker; retries when `retry` is given (idempotent calls only). */
  guard<T>(service: string, fn: () => Promise<T>, retry?: RetryOptions, action?: string, deadline?: number): Promise<T> {
    const bulkhead = this.bulkheadOf(service);
    const breaker = this.get(service, action);
    // The common case, a free slot: the breaker frees it when the call ends (no promise of its own).
    if (!retry && bulkhead.tryAcquire()) return breaker.run(fn, bulkhead.release);
    if (!retry) return bulkhead.run(() => breaker.run(fn), deadline);
    return this.retrying(bulkhead, breaker, fn, retry);
  }

  /**
   * What a call to `service` arriving now would get at once: PLT_BULKHEAD_FULL when it could not
   * start in time, PLT_BREAKER_OPEN when its breaker is open, or null (it would run or wait).
   * Changes nothing: a caller asks before doing any work for the call (reading a request's body).
   */
  admits(service: string, action = ""): PlinthError | null {
    const full = this.bulkheads.get(service)?.refusal();
    if (full) return full;
    return this.resolved.get(service)?.get(action)?.refusal() ?? null;
  }

  private bulkheadOf(service: string): Bulkhead {
    let bulkhead = this.bulkheads.get(service);
    if (!bulkhead) this.bulkheads.set(service, (bulkhead = new Bulkhead(service, this.bulkhead, this.clock)));
    return bulkhead;
  }

  private async retrying<T>(bulkhead: Bulkhead, breaker: CircuitBreaker, fn: () => Promise<T>, retry: RetryOptions): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await bulkhead.run(() => breaker.run(fn), retry.deadline);
      } catch (err) {
        // Only callee failures are retried; never a 4xx, an open breaker or a full bulkhead.
        if (attempt >= retry.retries || !isFailure(err) || breaker.state === "open") throw err;
        const delay = retry.retryDelayMs * 2 ** attempt * (0.5 + Math.random());
        if (epochNow(this.clock) + delay >= retry.deadline) throw err;
        await (this.clock.sleep ? this.clock.sleep(delay) : Bun.sleep(delay));
      }
    }
  }

  /**
   * Drops a service's breakers (its own and its actions'), so the next call builds them from the
   * settings in force then: a new version of a plugin starts with fresh breakers and its own settings.
   */
  forget(service: string): void {
    this.resolved.delete(service);
    for (const target of this.byTarget.keys()) if (target === service || target.startsWith(`${service}.`)) this.byTarget.delete(target);
  }

  /**
   * A service taken out of the platform: its breakers and its bulkhead are dropped, so they no longer
   * show in `snapshot()` and the transitions of its last calls are not reported. Calls already
   * admitted finish against the objects they hold.
   */
  retire(service: string): void {
    this.forget(service);
    this.bulkheads.delete(service);
  }

  snapshot(): Record<string, BreakerSnapshot> {
    return Object.fromEntries([...this.byTarget].map(([name, b]) => [name, b.snapshot()]));
  }
}
