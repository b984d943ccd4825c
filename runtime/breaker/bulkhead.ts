/**
 * Bulkhead: at most `maxConcurrent` calls into a service at once, up to
 * `maxQueue` more waiting in order, and an immediate PLT_BULKHEAD_FULL
 * (503) beyond that, instead of piling up.
 */
import { PlinthError } from "../errors";

export interface BulkheadOptions {
  maxConcurrent: number;
  maxQueue: number;
}

export class Bulkhead {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    readonly name: string,
    private readonly options: BulkheadOptions,
  ) {}

  get load(): { active: number; queued: number } {
    return { active: this.active, queued: this.waiting.length };
  }

  /** Takes a free slot if there is one (the caller must then call `release` exactly once). */
  tryAcquire(): boolean {
    if (this.active >= this.options.maxConcurrent) return false;
    this.active++;
    return true;
  }

  run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.tryAcquire()) return fn().finally(this.release);
    if (this.waiting.length >= this.options.maxQueue) {
      return Promise.reject(
        new PlinthError("PLT_BULKHEAD_FULL", `service "${this.name}" is at capacity`, {
          data: { service: this.name, ...this.load, ...this.options },
        }),
      );
    }
    // The slot is handed over by release(), so `active` already counts this call.
    return new Promise<void>((resolve) => this.waiting.push(resolve)).then(() => fn().finally(this.release));
  }

  /** Hands the slot straight to the next caller in line, or frees it. */
  readonly release = (): void => {
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  };
}
