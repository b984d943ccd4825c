/**
 * The broker's message emitter (aedes `opts.mq`): what mqemitter does for aedes, without its recursion.
 *
 * aedes hands every message to its emitter, which calls each matching subscriber (a client's delivery
 * function, a bus handler, aedes' own `$SYS` listeners) and calls back once all have finished. At most
 * `concurrency` messages are being delivered at once; the rest wait in a queue. mqemitter starts the
 * next queued message from inside the release of the previous one, so a message whose subscribers
 * finish synchronously (none at all, or only in-process bus handlers) starts the next one a few stack
 * frames deeper: a queue of N such messages is N nested calls. A slow subscriber lets the queue grow
 * (it holds the slots), and once it leaves (disconnected as a slow consumer) a commit of 100,000
 * events drains in one nested chain and throws `RangeError: Maximum call stack size exceeded`
 * (mqemitter 7.1.0, `released` → `_do` → fastparallel → `released`).
 *
 * Here the queue drains in a loop: a release inside the loop only frees its slot, and the loop starts
 * the next messages. After `BATCH` messages the loop lets the event loop turn (setImmediate) before it
 * goes on, so a long queue of synchronous deliveries never holds the thread for long. While messages
 * wait, a new one waits behind them (order is kept per publisher, [MQTT-4.6.0-6]).
 *
 * The interface is the one aedes calls: `on`, `removeListener`, `emit`, `close`.
 */
import { Qlobber } from "qlobber";
import { SubscriptionClock } from "./subscription-clock";

/** A subscriber: called with the message and a callback for when it is done with it. */
export type Listener<M> = (message: M, done: () => void) => void;

type Callback = (err?: Error) => void;

/** Messages started in one turn of the event loop from the queue before it yields. */
export const BATCH = 1024;

const noop = () => {};

export class Emitter<M extends { topic: string }> {
  readonly concurrency: number;
  /** Messages being delivered now. */
  current = 0;
  closed = false;
  /** Ticks with each listener added (see subscription-clock.ts). */
  readonly clock = new SubscriptionClock();
  private readonly matcher = new Qlobber<Listener<M>>({ separator: "/", wildcard_one: "+", wildcard_some: "#", match_empty_levels: true });
  // The queue: messages and their callbacks, from `head` on.
  private messages: M[] = [];
  private callbacks: Callback[] = [];
  private head = 0;
  /** A loop is starting queued messages (now, or after its yield). */
  private draining = false;

  private readonly onError: (err: unknown, topic: string) => void;

  /**
   * `concurrency`: messages delivered at once (aedes' default is 100). `onError`: a subscriber that
   * threw (the message counts as delivered to it; the others and the queue go on).
   */
  constructor(options: { concurrency?: number; onError?: (err: unknown, topic: string) => void } = {}) {
    this.concurrency = Math.max(1, options.concurrency ?? 100);
    this.onError = options.onError ?? (() => {});
  }

  /** Messages waiting for a slot. */
  get length(): number {
    return this.messages.length - this.head;
  }

  on(filter: string, listener: Listener<M>, done?: () => void): this {
    this.matcher.add(filter, listener);
    this.clock.tick();
    if (done) setImmediate(done);
    return this;
  }

  /** Removed on the next turn (as mqemitter does: a message already being delivered still reaches it). */
  removeListener(filter: string, listener: Listener<M>, done?: () => void): this {
    setImmediate(() => {
      this.matcher.remove(filter, listener);
      done?.();
    });
    return this;
  }

  removeAllListeners(filter: string, done?: () => void): this {
    this.matcher.remove(filter);
    if (done) setImmediate(done);
    return this;
  }

  /** Whether a message on `topic` would reach any listener now. */
  wants(topic: string): boolean {
    return this.matcher.match(topic).length > 0;
  }

  emit(message: M, callback: Callback = noop): this {
    if (this.closed) {
      callback(new Error("mqemitter is closed"));
      return this;
    }
    if (this.current >= this.concurrency || this.head < this.messages.length) {
      this.messages.push(message);
      this.callbacks.push(callback);
      // Nothing in flight to release a slot (the queue's own loop is not running): start one.
      if (this.current < this.concurrency && !this.draining) this.drain();
    } else {
      this.deliver(message, callback);
    }
    return this;
  }

  close(callback?: () => void): this {
    this.closed = true;
    if (callback) setImmediate(callback);
    return this;
  }

  private deliver(message: M, callback: Callback): void {
    this.current++;
    const listeners = this.matcher.match(message.topic);
    let left = listeners.length;
    if (left === 0) {
      callback();
      this.release();
      return;
    }
    const one = () => {
      if (--left === 0) {
        callback();
        this.release();
      }
    };
    for (let i = 0; i < listeners.length; i++) {
      try {
        listeners[i]!.call(this, message, one);
      } catch (err) {
        this.onError(err, message.topic);
        one();
      }
    }
  }

  /** A message is delivered: its slot goes to the next one waiting. */
  private release(): void {
    this.current--;
    if (this.head < this.messages.length && !this.draining) this.drain();
  }

  /** Starts queued messages while there are slots, in a loop (a release inside it only frees its slot). */
  private drain(): void {
    this.draining = true;
    let started = 0;
    while (this.head < this.messages.length && this.current < this.concurrency) {
      if (started++ === BATCH) {
        setImmediate(() => {
          this.draining = false;
          if (this.head < this.messages.length && this.current < this.concurrency) this.drain();
        });
        return;
      }
      const i = this.head++;
      const message = this.messages[i]!;
      const callback = this.callbacks[i]!;
      // Let go of what was taken; start over once the queue is empty or mostly taken.
      (this.messages as Array<M | undefined>)[i] = undefined;
      (this.callbacks as Array<Callback | undefined>)[i] = undefined;
      if (this.head === this.messages.length) this.reset();
      else if (this.head >= 4096 && this.head * 2 >= this.messages.length) this.compact();
      this.deliver(message, callback);
    }
    this.draining = false;
  }

  private reset(): void {
    this.messages = [];
    this.callbacks = [];
    this.head = 0;
  }

  private compact(): void {
    this.messages = this.messages.slice(this.head);
    this.callbacks = this.callbacks.slice(this.head);
    this.head = 0;
  }
}
