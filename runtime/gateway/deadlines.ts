/**
 * Races promises against deadlines with one coarse sweep timer for all of
 * them, instead of a timer per promise (a setTimeout and clearTimeout per
 * request cost more than reading a small body).
 */
/** How late a deadline may fire. */
const RESOLUTION_MS = 50;

export class Deadlines {
  private readonly waiting = new Set<{ deadline: number; reject: (err: Error) => void }>();
  private timer: Timer | undefined;

  constructor(private readonly error: () => Error) {}

  /** `promise`, or a rejection with the error once `deadline` (epoch ms) has passed. */
  race<T>(promise: Promise<T>, deadline: number): Promise<T> {
    if (!Number.isFinite(deadline)) return promise;
    return new Promise<T>((resolve, reject) => {
      const entry = { deadline, reject };
      this.waiting.add(entry);
      this.timer ??= setInterval(() => this.sweep(), RESOLUTION_MS).unref();
      promise.then(
        (value) => (this.waiting.delete(entry), resolve(value)),
        (err: unknown) => (this.waiting.delete(entry), reject(err)),
      );
    });
  }

  private sweep(): void {
    const now = Date.now();
    for (const entry of this.waiting) {
      if (entry.deadline > now) continue;
      this.waiting.delete(entry);
      entry.reject(this.error());
    }
    if (this.waiting.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}
