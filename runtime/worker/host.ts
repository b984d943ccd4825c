/**
 * One Bun Worker per plugin: spawn it, pass requests with timeouts, restart it
 * with backoff when it crashes, give up after too many crashes in a row, and
 * stop it cleanly. Knows nothing about HTTP routing or breakers.
 */
import { PlinthError, type WireError } from "../errors";
import type { Logger } from "../log";
import type { CommittedEvent, Identity, Manifest } from "../protocol";
import type { StorageState } from "../storage/faults";
import { storeOptions } from "../storage/open";
import type { Config } from "../../config/schema";
import { batched, decode, type HostMessage, type PluginSource, type WorkerMessage } from "./channel";
import type { Cursor } from "./inbox";
import { describeThrown, summarize } from "./fault";
import { Heartbeat } from "./heartbeat";
import { PendingRequests, type RequestOrigin } from "./pending";

/**
 * Requests to a worker leave in batches of at most this many: the worker starts on the first ones while
 * this thread is still reading the rest, instead of the two taking turns (measured with wrk -c50: the
 * write path +9–20%, echo −1–3%; 8 cost echo 8%).
 */
const BATCH_MAX = 16;

export type HostState = "starting" | "ready" | "restarting" | "failed" | "stopping" | "stopped";

/** A request to the plugin, without the id the host assigns. */
type Requests = Exclude<Extract<HostMessage, { id: number }>, { t: "reply" }>;
export type HostRequest = Requests extends infer M ? (M extends Requests ? Omit<M, "id"> : never) : never;

/** A ctx.call as the host resolved it: the caller and deadline come from the request that made it. */
export interface OutgoingCall {
  target: string;
  params: unknown;
  deadline: number;
  identity: Identity | null;
}

/** The sections of the platform's config a host reads: its workers', its event log's, its data's and its log's. */
export type HostConfig = Pick<Config, "workers" | "events" | "data" | "log">;

export interface HostOptions {
  source: PluginSource;
  config: HostConfig;
  log: Logger;
  /** Looks up the plugin's own section of `plugins.config` once its name is known. */
  configFor: (name: string) => Record<string, unknown>;
  /**
   * Called once the plugin is imported and validated, before its database is opened:
   * throw (e.g. PLT_PLUGIN_DUPLICATE) to refuse it. May wait for other plugins.
   */
  claim?: (manifest: Manifest) => void | Promise<void>;
  /** A call the plugin makes through ctx.call. */
  onCall: (from: string, call: OutgoingCall) => Promise<unknown>;
  /**
   * Committed events, in commit order, as their commit's result reaches this thread (before it is
   * answered). The worker publishes them itself, on its events port (see eventsPort).
   */
  onEvents: (from: string, events: CommittedEvent[]) => void;
  /** Every (re)start that reached ready, with the manifest the plugin reported. */
  onReady?: (manifest: Manifest) => void;
  /** A state change after start (crash, restart, failed). */
  onStateChange?: (state: HostState, reason?: WireError) => void;
}


// From source: next to this file. In the compiled binary, entry.ts is a second entrypoint and
// lives at its path relative to the entrypoints' common root (runtime/), i.e. ./worker/entry.ts.
const ENTRY = import.meta.url.includes("/$bunfs/") ? "./worker/entry.ts" : new URL("./entry.ts", import.meta.url).href;
const STABLE_AFTER_MS = 60_000;

export class WorkerHost {
  state: HostState = "starting";
  manifest: Manifest | null = null;
  /** How far each subscription had handled each source's events when the plugin last became ready. */
  cursors: Cursor[] = [];
  lastError: WireError | null = null;
  /** The service's storage fault as its worker last reported it (disk full, read-only, ...); null: healthy. */
  storage: StorageState | null = null;
  restarts = 0;
  private worker: Worker | null = null;
  private readonly pending = new PendingRequests(() => this.name);
  private crashesInRow = 0;
  private lastCrashAt = 0;
  private restartTimer: Timer | null = null;
  private readonly heartbeat: Heartbeat;
  /** Sends to the current worker, once per turn of the event loop (see post). */
  private send: ((message: HostMessage) => void) | null = null;
  private stopped: (() => void) | null = null;
  /** Settles a start() still in progress when stop() is called. */
  private abortStart: ((error: PlinthError) => void) | null = null;

  /** The `workers` section: timeouts, heartbeat, heap limit, restarts, group commit. */
  private readonly workers: Config["workers"];

  constructor(private readonly options: HostOptions) {
    const workers = (this.workers = options.config.workers);
    // A worker that stays silent past heartbeatTimeoutMs is treated as crashed (and restarted).
    this.heartbeat = new Heartbeat(
      workers.heartbeatMs,
      workers.heartbeatTimeoutMs,
      () => this.post({ t: "ping" }),
      () => {
        const reason = `stopped answering (no heartbeat for ${workers.heartbeatTimeoutMs} ms)`;
        this.crashed(new PlinthError("PLT_SERVICE_UNAVAILABLE", `worker ${reason}`), reason);
      },
    );
  }

  get name(): string {
    return this.manifest?.name ?? (this.options.source.kind === "file" ? this.options.source.path : this.options.source.name);
  }

  /**
   * Starts the worker in two phases, each within startTimeoutMs: import and validate the plugin
   * ("loaded"), let `claim` accept its name, then open its database and migrate ("ready").
   */
  start(): Promise<Manifest> {
    return new Promise((resolve, reject) => {
      const worker = new Worker(ENTRY);
      this.worker = worker;
      // Bound to this worker: what was queued for it is dropped if it has been replaced meanwhile.
      this.send = batched<HostMessage>((text) => this.worker === worker && worker.postMessage(text), setImmediate, BATCH_MAX).post;
      let timer: Timer | undefined;
      const deadline = (phase: string) => {
        clearTimeout(timer);
        timer = setTimeout(() => settle(new PlinthError("PLT_PLUGIN_LOAD", `did not ${phase} within ${this.workers.startTimeoutMs} ms`)), this.workers.startTimeoutMs);
      };
      let settled = false;
      const settle = (error: PlinthError | null) => {
        if (settled) return;
        settled = true;
        this.abortStart = null;
        clearTimeout(timer);
        if (!error) return resolve(this.manifest!);
        worker.terminate();
        if (this.state !== "stopping" && this.state !== "stopped") {
          this.lastError = error.toWire();
          this.state = "failed";
        }
        reject(error);
      };
      this.abortStart = settle;

      const handle = (msg: WorkerMessage): void => {
        if (msg.t === "batch") return msg.items.forEach(guarded);
        if (msg.t === "loaded") {
          clearTimeout(timer);
          Promise.resolve(this.options.claim?.(msg.manifest)).then(
            () => {
              if (settled) return;
              this.manifest = msg.manifest;
              deadline("open its database and migrate");
              this.post({ t: "open", config: this.options.configFor(msg.manifest.name) });
            },
            (err: unknown) => settle(PlinthError.from(err, "PLT_PLUGIN_LOAD")),
          );
        } else if (msg.t === "ready") {
          this.cursors = msg.cursors;
          this.storage = null; // a new worker: it reports its own faults
          this.state = "ready";
          this.heartbeat.start();
          this.options.onReady?.(this.manifest!);
          settle(null);
        } else if (msg.t === "failed") {
          settle(PlinthError.fromWire(msg.error));
        } else {
          this.receive(msg, worker);
        }
      };
      // Whatever the worker sends (its plugin can post anything), nothing thrown here leaves this
      // handler: a message that is not the protocol's ends that worker, a fault in handling one is logged.
      worker.onmessage = (e: MessageEvent<unknown>) => {
        let msg: WorkerMessage;
        try {
          msg = decode<WorkerMessage>(e.data);
        } catch (err) {
          const error = PlinthError.from(err, "PLT_INTERNAL");
          this.options.log.error("unreadable message from the worker", { error: error.message });
          if (!settled) return settle(new PlinthError("PLT_PLUGIN_LOAD", `sent an unreadable message: ${error.message}`));
          if (this.worker === worker) this.crashed(new PlinthError("PLT_SERVICE_UNAVAILABLE", `worker sent an unreadable message: ${error.message}`), "broke the protocol");
          return;
        }
        guarded(msg);
      };
      const guarded = (msg: WorkerMessage): void => {
        try {
          handle(msg);
        } catch (err) {
          this.options.log.error("handling a message from the worker failed", { error: describeThrown(err) });
        }
      };
      worker.addEventListener("error", (e: ErrorEvent) => {
        // Bun's text of an uncaught error carries source lines, file paths and stack frames: the log
        // gets it once, whatever else reports the error gets its message line alone.
        const detail = e.message || "worker error";
        if (!settled) {
          this.options.log.error("worker error while starting", { error: detail });
          return settle(new PlinthError("PLT_PLUGIN_LOAD", summarize(detail)));
        }
        if (this.worker !== worker) return; // an old worker's late error: its replacement is not the one that failed
        this.crashed(new PlinthError("PLT_SERVICE_UNAVAILABLE", `worker crashed: ${summarize(detail)}`), "crashed", detail);
      });
      worker.addEventListener("close", () => {
        if (this.worker !== worker) return;
        this.worker = null;
        if (!settled) return settle(new PlinthError("PLT_PLUGIN_LOAD", "worker exited during start"));
        if (this.stopped) return this.stopped();
        this.crashed(new PlinthError("PLT_SERVICE_UNAVAILABLE", "worker exited"), "exited");
      });
      deadline("load");
      const { config } = this.options;
      this.post({
        t: "init",
        source: this.options.source,
        dataDir: config.data.dir,
        retainSent: config.events.retainSent,
        retainSentMs: Number.isFinite(config.events.retainSentMs) ? config.events.retainSentMs : null,
        groupCommitMs: this.workers.groupCommitMs,
        store: storeOptions(config.data),
        logLevel: this.options.log.level,
        logFormat: config.log.format,
      });
    });
  }

  /**
   * Sends a request to the plugin; rejects with PLT_TIMEOUT after timeoutMs. `report` hears how it
   * ended (nothing: answered) before the promise settles, whatever the ending.
   */
  request(message: HostRequest, timeoutMs: number, report?: (err?: PlinthError) => void): Promise<unknown> {
    if (this.state !== "ready" || !this.worker) {
      const error = new PlinthError("PLT_SERVICE_UNAVAILABLE", `service "${this.name}" is ${this.state}`);
      report?.(error);
      return Promise.reject(error);
    }
    const { id, answer } = this.pending.open(timeoutMs, originOf(message), report);
    try {
      this.post({ ...message, id } as HostMessage);
    } catch (err) {
      // Not sendable (JSON cannot carry it, or nested too deep): this request fails, nothing else.
      this.pending.settle(id, { ok: false, error: PlinthError.from(err, "PLT_BAD_REQUEST") });
    }
    return answer;
  }

  /** Resolves once no request is in flight (or after timeoutMs). */
  drain(timeoutMs: number): Promise<void> {
    return this.pending.drained(timeoutMs);
  }

  /** Asks the plugin to close its database, then ends the worker. */
  async stop(timeoutMs = 5_000): Promise<void> {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.heartbeat.stop();
    const worker = this.worker;
    this.state = "stopping";
    const stopping = new PlinthError("PLT_SHUTTING_DOWN", `service "${this.name}" is stopping`);
    this.abortStart?.(stopping);
    if (worker) {
      // What the worker already has is handled before it stops, in order: synchronous handlers
      // commit and their callers get the real answers. An async handler still awaiting when "stop"
      // arrives loses its database under it: what is still pending once the worker stopped fails.
      // The worker waits (half the time) for the acks of the events it is publishing.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.stopped = () => {
          clearTimeout(timer);
          resolve();
        };
        this.post({ t: "stop", waitMs: Math.floor(timeoutMs / 2) });
      });
      worker.terminate();
    }
    this.pending.failAll(stopping);
    this.worker = null;
    this.state = "stopped";
  }

  /**
   * Messages to the worker leave together once per turn of the event loop, or as soon as
   * BATCH_MAX are waiting: under load one postMessage carries many requests.
   * Messages for a worker that has since been replaced are dropped (their requests failed with it).
   * Throws PLT_BAD_REQUEST for a message that cannot cross (see encode in channel.ts).
   */
  private post(message: HostMessage): void {
    if (this.worker) this.send?.(message);
  }

  /** A message from `from`, the worker that sent it (maybe since replaced by a restart). */
  private receive(msg: WorkerMessage, from: Worker): void {
    switch (msg.t) {
      case "result": {
        if (msg.ok) {
          // Committed events are told even if the caller gave up waiting.
          if (msg.events.length > 0) this.options.onEvents(this.name, msg.events);
          this.pending.settle(msg.id, { ok: true, value: msg.value });
        } else {
          this.pending.settle(msg.id, { ok: false, error: PlinthError.fromWire(msg.error) });
        }
        return;
      }
      case "call": {
        // A worker cannot lend its calls an identity it was not handed, nor more time than its caller has.
        const origin = msg.request === null ? undefined : this.pending.originOf(msg.request);
        const deadline = Math.min(msg.deadline ?? Number.POSITIVE_INFINITY, origin?.deadline ?? Number.POSITIVE_INFINITY);
        // The reply goes to the worker that asked: one restarted meanwhile numbers its calls afresh.
        const reply = (message: Extract<HostMessage, { t: "reply" }>) => {
          if (this.worker !== from) return;
          try {
            this.post(message);
          } catch (err) {
            this.post({ t: "reply", id: msg.id, ok: false, error: PlinthError.from(err, "PLT_BAD_REQUEST").toWire() });
          }
        };
        this.options.onCall(this.name, { target: msg.target, params: msg.params, deadline, identity: origin?.identity ?? null }).then(
          (value) => reply({ t: "reply", id: msg.id, ok: true, value }),
          (err) => reply({ t: "reply", id: msg.id, ok: false, error: PlinthError.from(err, "PLT_INTERNAL").toWire() }),
        );
        return;
      }
      case "events":
        this.options.onEvents(this.name, msg.events);
        return;
      case "pong":
        this.heartbeat.pong();
        if (this.workers.maxHeapBytes > 0 && msg.heapBytes > this.workers.maxHeapBytes) {
          const mib = (n: number) => `${Math.round(n / 2 ** 20)} MiB`;
          this.crashed(new PlinthError("PLT_SERVICE_UNAVAILABLE", `heap of ${mib(msg.heapBytes)} exceeds workers.maxHeapBytes (${mib(this.workers.maxHeapBytes)}): leaking?`), "outgrew its memory limit");
        }
        return;
      case "stopped":
        this.stopped?.();
        return;
      case "storage":
        if (this.worker === from) this.storage = msg.fault;
        return;
    }
  }

  /** Asks the plugin to publish every committed event not yet marked sent. */
  relay(): void {
    this.post({ t: "relay" });
  }

  /**
   * A new events port for the current worker (null: none running): the worker publishes on it from
   * now on (and, with `relay`, publishes what is unsent at once); the bus takes the other end.
   */
  eventsPort(relay: boolean): MessagePort | null {
    if (!this.worker) return null;
    const channel = new MessageChannel();
    // Not through post(): a port is not JSON, and it must not wait behind the queued requests' turn.
    this.worker.postMessage({ t: "events-port", relay }, [channel.port1]);
    return channel.port2;
  }

  /**
   * A running worker died: fail its in-flight requests now, restart it with backoff or give up.
   * `error` is what the service's listing shows (lastError); its callers hear only that the worker
   * `what` ("crashed"); `detail` (the full text, stack included) goes to the log, once.
   */
  private crashed(error: PlinthError, what: string, detail = error.message): void {
    if (this.state === "stopping" || this.state === "stopped" || this.state === "failed") return;
    this.heartbeat.stop();
    const worker = this.worker;
    this.worker = null;
    worker?.terminate();
    this.lastError = error.toWire();
    this.pending.failAll(new PlinthError("PLT_SERVICE_UNAVAILABLE", `${this.name}: worker ${what}`));

    const now = Date.now();
    this.crashesInRow = now - this.lastCrashAt > STABLE_AFTER_MS ? 1 : this.crashesInRow + 1;
    this.lastCrashAt = now;
    const log = this.options.log;
    if (this.crashesInRow > this.workers.maxRestarts) {
      log.error("service failed: crash loop, not restarting", { crashes: this.crashesInRow, error: detail });
      this.setState("failed");
      return;
    }
    const delay = this.workers.restartDelayMs * 2 ** (this.crashesInRow - 1);
    log.warn("service crashed, restarting", { inMs: delay, error: detail });
    this.setState("restarting");
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      this.restarts++;
      this.start().then(
        () => this.setState("ready"),
        (err: PlinthError) => {
          if (this.state === "stopping" || this.state === "stopped") return;
          log.error("service failed to restart", { error: err.message });
          this.setState("failed");
        },
      );
    }, delay);
  }

  private setState(state: HostState): void {
    this.state = state;
    this.options.onStateChange?.(state, this.lastError ?? undefined);
  }
}

/** Who a request acts for and until when, as the host sent it (HTTP and action calls carry a caller). */
function originOf(message: HostRequest): RequestOrigin | undefined {
  if (message.t === "http") return { identity: message.req.identity ?? null, deadline: message.req.deadline ?? Number.POSITIVE_INFINITY };
  if (message.t === "action") return { identity: message.identity ?? null, deadline: message.deadline ?? Number.POSITIVE_INFINITY };
  return undefined;
}
