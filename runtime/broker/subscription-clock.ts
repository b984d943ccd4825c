/**
 * Counts the subscriptions the broker takes (in its emitter, or in its store for a persistent
 * session), in memory other threads read without a message. Only a new subscription can make a
 * topic wanted; a removal only makes it wanted by fewer. So a thread told that nobody wanted a topic
 * when the count read N knows that nobody wants it while the count still reads N: the broker's
 * thread reads the count before it checks, and ticks after each add (both on its own thread).
 */
export class SubscriptionClock {
  readonly buffer = new SharedArrayBuffer(4);
  private readonly count = new Int32Array(this.buffer);

  readonly tick = (): void => {
    Atomics.add(this.count, 0, 1);
  };

  now(): number {
    return Atomics.load(this.count, 0);
  }
}

/** The count of a clock whose buffer was posted from another thread. */
export function readClock(buffer: SharedArrayBuffer): () => number {
  const count = new Int32Array(buffer);
  return () => Atomics.load(count, 0);
}
