/**
 * The main thread's side of the broker's thread: the Bus over messages to it, the WebSocket relay,
 * and its supervision. A thread that dies (an uncaught fault, or silent past the heartbeat timeout)
 * is started again after a backoff, on the ports it had bound, from its store: the in-process
 * subscriptions are made again, and `onReconnect` listeners serve the plugins' events ports again.
 * Meanwhile publishes fail at once (PLT_SERVICE_UNAVAILABLE) and MQTT-over-WebSocket clients are
 * disconnected (close code 1012, "service restart"): they reconnect, as TCP clients do.
 */
import type { Config } from "../../../config/schema";
import { PlinthError } from "../../errors";
import type { Logger } from "../../log";
import type { StorageState } from "../../storage/faults";
import { Heartbeat } from "../../worker/heartbeat";
import type { Bus, BusHandler } from "../bus";
import type { FromBroker, ToBroker } from "./messages";
import { WebSocketRelay } from "./relay";

// From source: next to this file. In the compiled binary, entry.ts is another entrypoint, at its
// path relative to the entrypoints' common root (runtime/).
const ENTRY = import.meta.url.includes("/$bunfs/") ? "./bus/thread/entry.ts" : new URL("./entry.ts", import.meta.url).href;
/** Restarts back off from workers.restartDelayMs, doubling, up to this; a thread up this long starts again from the first delay. */
const MAX_RESTART_DELAY_MS = 5_000;
const STABLE_AFTER_MS = 60_000;
const CLOSE_TIMEOUT_MS = 10_000;

interface Pending {
  resolve(value: number | undefined): void;
  reject(err: Error): void;
}

export class BrokerThread implements Bus {
  port = 0;
  tlsPort: number | null = null;
  websocketPort: number | null = null;
  readonly local = null;
  readonly bus: Bus = this;
  private worker: Worker | null = null;
  private next = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly subscriptions = new Map<number, { filter: string; handler: BusHandler }>();
  private readonly reconnectListeners: Array<() => void> = [];
  private readonly relay = new WebSocketRelay();
  private readonly heartbeat: Heartbeat;
  private readonly loggers = new Map<string, Logger>();
  private closing: Promise<void> | null = null;
  private restartTimer: Timer | null = null;
  private crashesInRow = 0;
  private startedAt = 0;

  constructor(
    private readonly config: Readonly<Config>,
    private readonly log: Logger,
    private readonly onStorage: (fault: StorageState | null) => void,
  ) {
    const { heartbeatMs, heartbeatTimeoutMs } = config.workers;
    this.heartbeat = new Heartbeat(heartbeatMs, heartbeatTimeoutMs, () => this.worker?.postMessage({ t: "ping" } satisfies ToBroker), (silentMs) => {
      this.log.error("broker thread stopped answering, restarting it", { silentMs: Math.round(silentMs) });
      this.kill();
    });
  }

  get websocket() {
    return this.relay.handler;
  }

  /** Starts the thread; resolves once its listeners are bound, rejects with why they could not be. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const worker = new Worker(ENTRY);
      this.worker = worker;
      let started = false;
      worker.addEventListener("message", (e: MessageEvent<FromBroker>) => {
        const m = e.data;
        if (m.t === "ready") {
          started = true;
          this.port = m.port;
          this.tlsPort = m.tlsPort;
          this.websocketPort = m.websocketPort;
          this.startedAt = performance.now();
          // A new thread's store starts healthy (it reports a fault again at its first failed write).
          this.onStorage(null);
          this.relay.attach((message) => worker.postMessage(message));
          this.heartbeat.start();
          resolve();
        } else if (m.t === "failed") {
          this.worker = null;
          worker.terminate();
          reject(new PlinthError(m.code as never, m.message));
        } else {
          this.received(m);
        }
      });
      worker.addEventListener("error", (e: ErrorEvent) => {
        // Bun's text of an uncaught error carries source lines and paths: the log has it, nothing else.
        this.log.error("broker thread failed", { error: e.message || "worker error" });
        worker.terminate();
      });
      worker.addEventListener("close", () => {
        if (this.worker !== worker) return;
        this.worker = null;
        if (!started) return reject(new PlinthError("PLT_INTERNAL", "the broker's thread exited while starting"));
        this.lost();
      });
      // The ports bound before are bound again, so that clients reconnect where they were.
      const config = this.port === 0 ? this.config : rebound(this.config, this.port, this.tlsPort, this.websocketPort);
      worker.postMessage({ t: "start", config } satisfies ToBroker);
    });
  }

  kill(): void {
    this.worker?.terminate();
  }

  onReconnect(listener: () => void): void {
    this.reconnectListeners.push(listener);
  }

  publish(topic: string, payload: string | Buffer, options: { qos?: 0 | 1; retain?: boolean } = {}): Promise<void> {
    return this.request((id) => ({ t: "publish", id, topic, payload, qos: options.qos ?? 1, retain: options.retain ?? false })).then(() => {});
  }

  clearRetained(filter: string): Promise<number> {
    return this.request((id) => ({ t: "clear", id, filter })).then((n) => n ?? 0);
  }

  async subscribe(filter: string, handler: BusHandler): Promise<() => Promise<void>> {
    const id = this.next++;
    this.subscriptions.set(id, { filter, handler });
    await this.request(() => ({ t: "subscribe", id, filter }), id);
    return async () => {
      if (!this.subscriptions.delete(id)) return;
      if (this.worker) await this.request((n) => ({ t: "unsubscribe", id: n, subscription: id })).catch(() => {});
    };
  }

  serveEvents(port: MessagePort, service: string, generation: Parameters<Bus["serveEvents"]>[2]): () => void {
    // No thread: the port is closed; the worker's events wait unsent until onReconnect serves a new one.
    if (!this.worker || this.closing) {
      port.close();
      return () => {};
    }
    const id = this.next++;
    const worker = this.worker;
    worker.postMessage({ t: "serve", id, service, generation } satisfies ToBroker, [port]);
    return () => {
      if (this.worker === worker) worker.postMessage({ t: "unserve", id } satisfies ToBroker);
    };
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.restartTimer) clearTimeout(this.restartTimer);
      this.heartbeat.stop();
      this.relay.attach(null);
      this.relay.closeAll(1001, "broker stopping");
      const worker = this.worker;
      if (!worker) return;
      const closed = new Promise<void>((resolve) => {
        worker.addEventListener("message", (e: MessageEvent<FromBroker>) => e.data.t === "closed" && resolve());
        worker.addEventListener("close", () => resolve());
      });
      worker.postMessage({ t: "close" } satisfies ToBroker);
      await Promise.race([closed, Bun.sleep(CLOSE_TIMEOUT_MS)]);
      this.worker = null;
      worker.terminate();
      this.fail(new PlinthError("PLT_SERVICE_UNAVAILABLE", "the broker is stopping"));
    })();
    return this.closing;
  }

  /** Posts a request; `id` when the caller chose it. */
  private request(make: (id: number) => ToBroker, id = this.next++): Promise<number | undefined> {
    const worker = this.worker;
    if (!worker || this.closing) return Promise.reject(new PlinthError("PLT_SERVICE_UNAVAILABLE", "the broker is restarting"));
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage(make(id));
    });
  }

  private received(m: Exclude<FromBroker, { t: "ready" | "failed" }>): void {
    switch (m.t) {
      case "done": {
        const pending = this.pending.get(m.id);
        if (!pending) return;
        this.pending.delete(m.id);
        return m.error === undefined ? pending.resolve(m.value) : pending.reject(new Error(m.error));
      }
      case "message": {
        const subscription = this.subscriptions.get(m.subscription);
        if (!subscription) return;
        try {
          subscription.handler(m.topic, Buffer.from(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength));
        } catch (err) {
          this.log.child("bus").error("bus subscriber threw", { topic: m.topic, error: err instanceof Error ? err.message : String(err) });
        }
        return;
      }
      case "pong":
        return this.heartbeat.pong();
      case "storage":
        return this.onStorage(m.fault);
      case "log":
        return this.logger(m.path)[m.level](m.msg, m.fields);
      case "closed":
        return;
      default:
        return this.relay.received(m);
    }
  }

  private logger(path: string[]): Logger {
    const key = path.join(".");
    let log = this.loggers.get(key);
    if (!log) this.loggers.set(key, (log = path.reduce((l, name) => l.child(name), this.log)));
    return log;
  }

  private fail(err: Error): void {
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.reject(err);
  }

  /** The thread died: what waited on it fails now, and it is started again after a backoff. */
  private lost(): void {
    this.heartbeat.stop();
    this.relay.attach(null);
    this.relay.closeAll(1012, "broker restarting");
    this.fail(new PlinthError("PLT_SERVICE_UNAVAILABLE", "the broker's thread stopped"));
    if (this.closing) return;
    this.crashesInRow = performance.now() - this.startedAt > STABLE_AFTER_MS ? 1 : this.crashesInRow + 1;
    const delay = Math.min(MAX_RESTART_DELAY_MS, this.config.workers.restartDelayMs * 2 ** (this.crashesInRow - 1));
    this.log.error("broker thread stopped, restarting it", { inMs: delay, crashesInRow: this.crashesInRow });
    this.restartTimer = setTimeout(() => void this.restart(), delay);
  }

  private async restart(): Promise<void> {
    this.restartTimer = null;
    if (this.closing) return;
    try {
      await this.start();
    } catch (err) {
      this.log.error("broker thread did not start again", { error: err instanceof Error ? err.message : String(err) });
      this.startedAt = performance.now(); // a failed start counts as a crash in a row
      return this.worker ? undefined : this.lost();
    }
    for (const [id, { filter }] of this.subscriptions) {
      await this.request(() => ({ t: "subscribe", id, filter }), id).catch((err) => this.log.error("subscribing again failed", { filter, error: (err as Error).message }));
    }
    this.log.info("broker thread restarted", { port: this.port });
    for (const listener of this.reconnectListeners) listener();
  }
}

/** The config with the broker's ports set to those bound the first time (which may have been 0: any). */
function rebound(config: Readonly<Config>, port: number, tlsPort: number | null, websocketPort: number | null): Readonly<Config> {
  const tls = config.broker.tls && tlsPort !== null ? { ...config.broker.tls, port: tlsPort } : config.broker.tls;
  return { ...config, broker: { ...config.broker, port, tls, websocketPort: websocketPort ?? config.broker.websocketPort } };
}
