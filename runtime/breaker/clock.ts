/** Time for the breaker and its window, injectable so that tests need no sleeping. */
export interface Clock {
  /** Monotonic milliseconds: what every duration is measured on. */
  now(): number;
  /** Wall-clock milliseconds since the epoch, for times shown to people and callers' deadlines; Date.now() when absent. */
  epoch?(): number;
  /** Waits `ms` (a retry's backoff); Bun.sleep when absent. */
  sleep?(ms: number): Promise<void>;
}

export const systemClock: Clock = { now: () => performance.now(), epoch: () => Date.now() };

/** The wall-clock time (ISO 8601) of `at`, a reading of `clock.now()`. */
export function wallTime(clock: Clock, at: number): string {
  return new Date(Math.round(epochNow(clock) + at - clock.now())).toISOString();
}

/** Wall-clock milliseconds since the epoch, on `clock`. */
export function epochNow(clock: Clock): number {
  return clock.epoch ? clock.epoch() : Date.now();
}
