/**
 * A rolling time window of call outcomes, kept in buckets: what the breaker's
 * failure-rate and slow-call-rate thresholds are computed over.
 */
import type { Clock } from "./breaker";

interface Bucket {
  start: number;
  calls: number;
  failures: number;
  slow: number;
}

export interface WindowTotals {
  calls: number;
  failures: number;
  slow: number;
}

export class RollingWindow {
  private readonly buckets: Bucket[];
  private readonly bucketMs: number;

  constructor(
    windowMs: number,
    count: number,
    private readonly clock: Clock,
  ) {
    this.bucketMs = Math.max(1, Math.ceil(windowMs / count));
    this.buckets = Array.from({ length: count }, () => ({ start: Number.NEGATIVE_INFINITY, calls: 0, failures: 0, slow: 0 }));
  }

  record(failure: boolean, slow: boolean): void {
    const now = this.clock.now();
    const start = Math.floor(now / this.bucketMs) * this.bucketMs;
    const bucket = this.buckets[Math.floor(now / this.bucketMs) % this.buckets.length]!;
    if (bucket.start !== start) Object.assign(bucket, { start, calls: 0, failures: 0, slow: 0 });
    bucket.calls++;
    if (failure) bucket.failures++;
    if (slow) bucket.slow++;
  }

  /** Outcomes within the window (buckets older than it are ignored). */
  totals(): WindowTotals {
    const oldest = this.clock.now() - this.bucketMs * this.buckets.length;
    const totals = { calls: 0, failures: 0, slow: 0 };
    for (const b of this.buckets) {
      if (b.start <= oldest) continue;
      totals.calls += b.calls;
      totals.failures += b.failures;
      totals.slow += b.slow;
    }
    return totals;
  }

  reset(): void {
    for (const b of this.buckets) Object.assign(b, { start: Number.NEGATIVE_INFINITY, calls: 0, failures: 0, slow: 0 });
  }
}
