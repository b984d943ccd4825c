/** Time for the breaker and its window, injectable so that tests need no sleeping. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => performance.now() };
