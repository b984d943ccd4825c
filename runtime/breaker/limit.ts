/**
 * How many calls one service runs at once. Fixed, or adaptive: the limit follows what the service
 * sustains, by Little's law, as BBR sizes a TCP window from a link's bandwidth and round trip:
 *
 *   limit = 2 × (most calls per second the service completed lately)
 *             × (its shortest round trip lately + QUEUE_MS)
 *
 * Calls are sampled in rounds of `limit` completions (at least MIN_ROUND). A round's rate and mean
 * round trip feed windowed filters (the highest rate, the lowest mean, over WINDOW_MS). So a
 * service that needs concurrency to be fast (calls that wait on I/O) is given it, one that runs
 * its calls one by one gets about what keeps it busy plus QUEUE_MS of work queued inside it (where
 * a call can no longer be shed or dropped at its deadline), and a slower service a lower limit.
 *
 * Round trips are measured on the main thread and include its turn: on a busy gateway every call
 * looks slow alike. Nothing here shrinks the limit because of that (a delay-based rule would, and
 * then starve the service exactly when the gateway is busiest): a slower turn lowers the rate only
 * as much as it lowers what the service is asked for. A round in which less than half the limit
 * was in use (demand, not the service, set its rate) leaves the limit as it is.
 */

export interface LimitOptions {
  /** The ceiling (and the fixed limit when not adaptive). */
  max: number;
  /** The floor of an adaptive limit. */
  min: number;
  adaptive: boolean;
}

/** An adaptive limit starts here (within min…max) and moves from there. */
const INITIAL = 20;
/** How long the highest rate and the lowest round trip are remembered. */
export const WINDOW_MS = 2_000;
/** Completions per round, at least. */
export const MIN_ROUND = 8;
/** Work allowed to wait inside the service, beyond what keeps it busy. */
export const QUEUE_MS = 50;

/** A windowed extreme: the best value seen within the last WINDOW_MS (a newer equal or better one replaces it). */
class Extreme {
  value = Number.NaN;
  private at = 0;
  constructor(private readonly better: (a: number, b: number) => boolean) {}
  offer(value: number, now: number): void {
    if (Number.isNaN(this.value) || !this.better(this.value, value) || now - this.at > WINDOW_MS) {
      this.value = value;
      this.at = now;
    }
  }
}

export class ConcurrencyLimit {
  /** The current limit: calls allowed into the service at once. */
  current: number;
  /** Smoothed mean round trip of a call (ms); 0 until the first round ends. */
  rtt = 0;
  private readonly rate = new Extreme((a, b) => a > b);
  private readonly shortest = new Extreme((a, b) => a < b);
  private sum = 0;
  private count = 0;
  private peak = 0;
  private roundStart = Number.NaN;

  constructor(private readonly options: LimitOptions) {
    this.current = options.adaptive ? Math.min(options.max, Math.max(options.min, INITIAL)) : options.max;
  }

  /** One call that ended: its round trip (ms), the calls in flight when it ended (itself included), and now. */
  sample(rtt: number, inflight: number, now: number): void {
    // A round starts no earlier than its first call did: idle time before it is not the service's pace.
    if (this.count === 0 && !(this.roundStart >= now - rtt)) this.roundStart = now - rtt;
    this.sum += rtt;
    if (inflight > this.peak) this.peak = inflight;
    if (++this.count < Math.max(MIN_ROUND, Math.min(this.current, 1_000))) return;
    const mean = this.sum / this.count;
    const perMs = this.count / Math.max(now - this.roundStart, 0.001);
    const used = this.peak * 2 >= this.current;
    this.sum = 0;
    this.count = 0;
    this.peak = 0;
    this.roundStart = now;
    this.rtt = this.rtt === 0 ? mean : this.rtt + (mean - this.rtt) / 4;
    if (!this.options.adaptive || !used) return;
    this.rate.offer(perMs, now);
    this.shortest.offer(mean, now);
    const next = Math.ceil(2 * this.rate.value * (this.shortest.value + QUEUE_MS));
    this.current = Math.min(this.options.max, Math.max(this.options.min, next));
  }
}
