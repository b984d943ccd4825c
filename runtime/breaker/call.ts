/**
 * Every cross-service call (service → service, gateway → service) goes through
 * `Breakers.guard`: one breaker per target service. The call itself (and its
 * timeout) is the caller's `fn`; this file only decides whether it may run.
 */
import { PlinthError } from "../errors";
import { SERVICE_NAME } from "../protocol";
import { CircuitBreaker, systemClock, type BreakerOptions, type BreakerSnapshot, type BreakerState, type Clock } from "./breaker";

export interface CallTarget {
  service: string;
  action: string;
}

/** Splits `"service.action"`; the action may itself contain dots. */
export function parseTarget(target: unknown): CallTarget {
  if (typeof target === "string") {
    const dot = target.indexOf(".");
    const service = target.slice(0, dot);
    const action = target.slice(dot + 1);
    if (dot > 0 && action.length > 0 && (SERVICE_NAME.test(service) || service === "$node")) return { service, action };
  }
  throw new PlinthError("PLT_BAD_REQUEST", `call target must be "service.action", got ${JSON.stringify(target)}`);
}

export type BreakerListener = (service: string, state: BreakerState, snapshot: BreakerSnapshot) => void;

export class Breakers {
  private readonly byService = new Map<string, CircuitBreaker>();

  constructor(
    private readonly options: BreakerOptions,
    private readonly clock: Clock = systemClock,
    private readonly listener: BreakerListener = () => {},
  ) {}

  get(service: string): CircuitBreaker {
    let breaker = this.byService.get(service);
    if (!breaker) {
      breaker = new CircuitBreaker(service, this.options, this.clock, (state, snapshot) => this.listener(service, state, snapshot));
      this.byService.set(service, breaker);
    }
    return breaker;
  }

  guard<T>(service: string, fn: () => Promise<T>): Promise<T> {
    return this.get(service).run(fn);
  }

  snapshot(): Record<string, BreakerSnapshot> {
    return Object.fromEntries([...this.byService].map(([name, b]) => [name, b.snapshot()]));
  }
}
