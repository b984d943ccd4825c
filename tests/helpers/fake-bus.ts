/**
 * A Bus without a broker, for unit tests of what sits on it (the loader): it serves events ports
 * as the real bus does (runtime/bus/event-port.ts), records each event it sends and what is
 * published, completes sends at once (refusing those `refuse` names) or holds them for the test to
 * complete, keeps the in-process subscriptions, and delivers what the test hands it to the
 * subscribers whose filter matches, as the broker would.
 */
import type { Bus, BusHandler } from "../../runtime/bus/bus";
import { serveEventPort } from "../../runtime/bus/event-port";
import { createLogger } from "../../runtime/log";

export interface FakeSend {
  topic: string;
  payload: string;
  /** Completes this send as the broker would: no argument for taken, an error for refused. */
  complete(err?: Error | null): void;
  readonly completed: boolean;
}

export interface FakeSubscription {
  filter: string;
  handler: BusHandler;
  /** False once unsubscribed. */
  active: boolean;
}

export interface FakeBus extends Bus {
  /** Every send, in the order made. */
  readonly sent: FakeSend[];
  readonly published: Array<{ topic: string; payload: string | Buffer; options?: { qos?: 0 | 1; retain?: boolean } }>;
  readonly cleared: string[];
  /** "subscribe <filter>" and "unsubscribe <filter>", in the order they happened. */
  readonly changes: string[];
  /** Every subscription made, unsubscribed ones included (see `active`). */
  readonly subscriptions: FakeSubscription[];
  /** Sends from now on wait for the test to complete them (`release` goes back to completing at once). */
  hold(): void;
  release(): void;
  /** Refuses every held send not completed yet, as a broker going away would (what waits for them stops waiting). */
  refusePending(err?: Error): void;
  /** Tells the onReconnect listeners that the broker is back, as a restarted broker thread would. */
  reconnect(): void;
  /** Sends completed at once are refused with the error this returns (null: taken). */
  refuse: (topic: string) => Error | null;
  /** The active filters, in subscription order. */
  filters(): string[];
  /** Hands a message to every active subscriber whose filter matches `topic`; returns how many. */
  deliver(topic: string, payload: string | Buffer): number;
  /**
   * Resolves with the first send (already made or to come) from index `from` on that `pick` accepts;
   * rejects, naming what was sent, when none comes within `timeoutMs`.
   */
  waitForSend(pick: (send: FakeSend) => boolean, from?: number, timeoutMs?: number): Promise<FakeSend>;
}

/** MQTT topic filter matching (`+` one level, `#` the rest) [MQTT-4.7.1-2, MQTT-4.7.1-3]. */
export function matches(filter: string, topic: string): boolean {
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

export function fakeBus(): FakeBus {
  const sent: FakeSend[] = [];
  const subscriptions: FakeSubscription[] = [];
  const changes: string[] = [];
  const waiters: Array<{ pick: (send: FakeSend) => boolean; from: number; resolve: (send: FakeSend) => void }> = [];
  let held = false;
  function send(topic: string, payload: string, done: (err?: Error | null) => void): void {
    const made: FakeSend = {
      topic,
      payload,
      completed: false,
      complete: (err?: Error | null) => {
        if (made.completed) throw new Error(`send on ${topic} completed twice`);
        (made as { completed: boolean }).completed = true;
        done(err);
      },
    };
    sent.push(made);
    if (!held) made.complete(bus.refuse(topic));
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i]!;
      if (sent.length - 1 >= w.from && w.pick(made)) {
        waiters.splice(i, 1);
        w.resolve(made);
      }
    }
  }
  const reconnectListeners: Array<() => void> = [];
  const bus: FakeBus = {
    sent,
    published: [],
    cleared: [],
    subscriptions,
    changes,
    refuse: () => null,
    hold: () => void (held = true),
    release: () => void (held = false),
    refusePending: (err = new Error("broker closed")) => {
      for (const send of sent) if (!send.completed) send.complete(err);
    },
    onReconnect: (listener) => void reconnectListeners.push(listener),
    reconnect: () => {
      for (const listener of reconnectListeners) listener();
    },
    filters: () => subscriptions.filter((s) => s.active).map((s) => s.filter),
    serveEvents: (port, service, generation) => serveEventPort(send, port, service, generation, createLogger({ level: "silent" })),
    async publish(topic, payload, options) {
      bus.published.push({ topic, payload, options });
    },
    async clearRetained(filter) {
      bus.cleared.push(filter);
      return 0;
    },
    async subscribe(filter, handler) {
      const subscription: FakeSubscription = { filter, handler, active: true };
      subscriptions.push(subscription);
      changes.push(`subscribe ${filter}`);
      return async () => {
        if (subscription.active) changes.push(`unsubscribe ${filter}`);
        subscription.active = false;
      };
    },
    deliver(topic, payload) {
      const buffer = typeof payload === "string" ? Buffer.from(payload) : payload;
      const to = subscriptions.filter((s) => s.active && matches(s.filter, topic));
      for (const s of to) s.handler(topic, buffer);
      return to.length;
    },
    waitForSend(pick, from = 0, timeoutMs = 10_000) {
      const found = sent.slice(from).find(pick);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const waiter = {
          pick,
          from,
          resolve: (send: FakeSend) => {
            clearTimeout(timer);
            resolve(send);
          },
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error(`no such send within ${timeoutMs} ms; sent: ${JSON.stringify(sent.map((x) => x.topic))}`));
        }, timeoutMs);
        waiters.push(waiter);
      });
    },
  };
  return bus;
}
