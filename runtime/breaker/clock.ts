/** Time for the breaker and its window, injectable so that tests need no sleeping. */
export interface Clock {
  /** Monotonic milliseconds: what every duration is measured on. */
  now(): number;
  /** Wall-clock milliseconds since the epoch, for times shown to people; Date.now() when absent. */
  epoch?(): number;
}

export const systemClock: Clock = { now: () => performance.now(), epoch: () => Date.now() };

/** The wall-clock time (ISO 8601) of `at`, a reading of `clock.now()`. */
export function wallTime(clock: Clock, at: number): string {
  const epoch = clock.epoch ? clock.epoch() : Date.now();
  return new Date(Math.round(epoch + at - clock.now())).toISOString();
}
