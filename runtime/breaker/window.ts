/**
 * A rolling time window of call outcomes, kept in buckets: what the breaker's
 * failure-rate and slow-call-rate thresholds are computed over. Totals are
 * kept up to date as buckets fill and expire, so reading them costs O(1)
 * on the call path (expiry sweeps at most once per bucket period).
 */
import type { Clock } from "./clock";

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

const empty = (): Bucket => ({ start: Number.NEGATIVE_INFINITY, calls: 0, failures: 0, slow: 0 });

export class RollingWindow {
  private readonly buckets: Bucket[];
  private readonly bucketMs: number;
  private readonly sum: WindowTotals = { calls: 0, failures: 0, slow: 0 };
  /** Start of the newest bucket the sums are known to be current for. */
  private sweptAt = Number.NEGATIVE_INFINITY;

  constructor(
    windowMs: number,
    count: number,
    private readonly clock: Clock,
  ) {
    this.bucketMs = Math.max(1, Math.ceil(windowMs / count));
    this.buckets = Array.from({ length: count }, empty);
  }

  /** Records one outcome at `now` (the caller's clock reading, to spare a second one). */
  record(failure: boolean, slow: boolean, now = this.clock.now()): void {
    const bucket = this.current(now);
    bucket.calls++;
    this.sum.calls++;
    if (failure) {
      bucket.failures++;
      this.sum.failures++;
    }
    if (slow) {
      bucket.slow++;
      this.sum.slow++;
    }
  }

  /** Outcomes within the window (buckets older than it no longer count). */
  totals(now = this.clock.now()): Readonly<WindowTotals> {
    this.current(now);
    return this.sum;
  }

  reset(): void {
    for (const b of this.buckets) Object.assign(b, empty());
    Object.assign(this.sum, { calls: 0, failures: 0, slow: 0 });
    this.sweptAt = Number.NEGATIVE_INFINITY;
  }

  /** The bucket for now, after dropping buckets that left the window from the sums. */
  private current(now: number): Bucket {
    const start = Math.floor(now / this.bucketMs) * this.bucketMs;
    if (start !== this.sweptAt) {
      this.sweptAt = start;
      const oldest = start - this.bucketMs * (this.buckets.length - 1);
      for (const b of this.buckets) {
        if (b.start < oldest && b.calls > 0) {
          this.sum.calls -= b.calls;
          this.sum.failures -= b.failures;
          this.sum.slow -= b.slow;
          Object.assign(b, empty());
        }
      }
    }
    const bucket = this.buckets[Math.floor(start / this.bucketMs) % this.buckets.length]!;
    if (bucket.start !== start) Object.assign(bucket, { start, calls: 0, failures: 0, slow: 0 });
    return bucket;
  }
}
