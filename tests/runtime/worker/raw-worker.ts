/**
 * A plugin worker (runtime/worker/entry.ts) driven message by message, without its host: the test
 * sends HostMessages as the host would (or would not), and waits for what the worker answers; with
 * attachPort, it is the bus's end of the worker's events port too. No sockets; the plugin's SQLite
 * file is real and can be read beside the worker.
 */
import { Database } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { WireError } from "../../../runtime/errors";
import type { CommittedEvent, Manifest } from "../../../runtime/protocol";
import { decode, encode, type HostMessage, type PublishAck, type PublishBatch, type WorkerMessage } from "../../../runtime/worker/channel";
import type { Cursor } from "../../../runtime/worker/inbox";

const ENTRY = new URL("../../../runtime/worker/entry.ts", import.meta.url).href;

export type Result = Extract<WorkerMessage, { t: "result" }>;
type Request = HostMessage extends infer M ? (M extends { id: number } ? (M extends { t: "reply" } ? never : Omit<M, "id">) : never) : never;

export interface InitOptions {
  retainSent?: number;
  retainSentMs?: number | null;
  groupCommitMs?: number;
  durability?: "full" | "normal";
}

export class RawWorker implements AsyncDisposable {
  /** Everything the worker posted, batches flattened, in order. */
  readonly received: WorkerMessage[] = [];
  /** Set once the worker closed (a clean stop, a crash, a terminate). */
  closed = false;
  private readonly worker = new Worker(ENTRY);
  private readonly waiters: Array<{ from: number; match: (m: WorkerMessage) => boolean; resolve: (m: WorkerMessage) => void }> = [];
  private nextId = 1;
  private readonly closing: Promise<void>;
  /** Batches the worker published on its events port, in order. */
  readonly published: CommittedEvent[][] = [];
  private port: MessagePort | null = null;
  private readonly batchWaiters: Array<() => void> = [];

  constructor(
    readonly pluginPath: string,
    readonly dataDir: string,
  ) {
    mkdirSync(dataDir, { recursive: true });
    this.worker.onmessage = (e: MessageEvent<string>) => {
      const msg = decode<WorkerMessage>(e.data);
      for (const m of msg.t === "batch" ? msg.items : [msg]) this.receive(m);
    };
    this.closing = new Promise((resolve) => this.worker.addEventListener("close", () => ((this.closed = true), resolve())));
  }

  /** A worker that loaded its plugin and opened its database: its manifest and the cursors it reported. */
  static async open(pluginPath: string, dataDir: string, init: InitOptions = {}, config: Record<string, unknown> = {}): Promise<RawWorker & { manifest: Manifest; cursors: Cursor[] }> {
    const w = new RawWorker(pluginPath, dataDir);
    const loaded = await w.init(init);
    if (loaded.t !== "loaded") throw new Error(`the plugin did not load: ${JSON.stringify(loaded)}`);
    const ready = await w.openDatabase(config);
    if (ready.t !== "ready") throw new Error(`the plugin did not open: ${JSON.stringify(ready)}`);
    return Object.assign(w, { manifest: loaded.manifest, cursors: ready.cursors });
  }

  /** Sends "init"; resolves with "loaded" or "failed". */
  init(options: InitOptions = {}): Promise<Extract<WorkerMessage, { t: "loaded" | "failed" }>> {
    this.send({
      t: "init",
      source: { kind: "file", path: this.pluginPath },
      dataDir: this.dataDir,
      retainSent: options.retainSent ?? 100,
      retainSentMs: options.retainSentMs === undefined ? null : options.retainSentMs,
      groupCommitMs: options.groupCommitMs ?? 0.2,
      store: { durability: options.durability ?? "normal" },
      logLevel: "silent",
      logFormat: "json",
    });
    return this.next((m): m is Extract<WorkerMessage, { t: "loaded" | "failed" }> => m.t === "loaded" || m.t === "failed");
  }

  /** Sends "open"; resolves with "ready" or "failed". */
  openDatabase(config: Record<string, unknown> = {}): Promise<Extract<WorkerMessage, { t: "ready" | "failed" }>> {
    this.send({ t: "open", config });
    return this.next((m): m is Extract<WorkerMessage, { t: "ready" | "failed" }> => m.t === "ready" || m.t === "failed");
  }

  send(message: HostMessage): void {
    this.worker.postMessage(encode(message));
  }

  /** Hands the worker a new events port, as the host does (`relay`: publish what is unsent at once); this end records its batches. */
  attachPort(relay = false): void {
    this.port?.close();
    const channel = new MessageChannel();
    this.port = channel.port2;
    this.port.onmessage = (e) => {
      this.published.push(decode<PublishBatch>(e.data).events);
      this.batchWaiters.splice(0).forEach((wake) => wake());
    };
    this.worker.postMessage({ t: "events-port", relay }, [channel.port1]);
  }

  /** The batch published at index `from` (default: the next one), received already or to come. */
  async nextBatch(from = this.published.length, timeoutMs = 5_000): Promise<CommittedEvent[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.published.length <= from) {
      if (Date.now() > deadline) throw new Error(`no batch ${from} on the events port within ${timeoutMs} ms; got ${this.published.length}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()) + 1);
        this.batchWaiters.push(() => (clearTimeout(timer), resolve()));
      });
    }
    return this.published[from]!;
  }

  /** Answers on the events port as the bus does: which seqs the broker took, which it refused. */
  ack(sent: number[], unsent: number[] = [], error?: string): void {
    if (!this.port) throw new Error("no events port: attachPort() first");
    this.port.postMessage({ sent, unsent, ...(error ? { error } : {}) } satisfies PublishAck);
  }

  /** Text as it is, for messages the host would never send. */
  sendRaw(data: unknown): void {
    this.worker.postMessage(data);
  }

  /** Sends a request with the next id (not waiting); returns the id. */
  post(message: Request): number {
    const id = this.nextId++;
    this.send({ ...message, id } as HostMessage);
    return id;
  }

  /** Sends a request and resolves with its result. */
  request(message: Request): Promise<Result> {
    return this.result(this.post(message));
  }

  /** The result of request `id` (received already, or to come). */
  result(id: number): Promise<Result> {
    return this.next((m): m is Result => m.t === "result" && m.id === id, 0);
  }

  /** A request's value; throws with its error when it failed. */
  async value(message: Request): Promise<unknown> {
    const r = await this.request(message);
    if (!r.ok) throw Object.assign(new Error(r.error.message), { wire: r.error });
    return r.value;
  }

  /** A request's error; throws when it succeeded. */
  async error(message: Request): Promise<WireError> {
    const r = await this.request(message);
    if (r.ok) throw new Error(`expected a failure, got ${JSON.stringify(r.value)}`);
    return r.error;
  }

  action(action: string, params: unknown = null): Promise<Result> {
    return this.request({ t: "action", action, params, caller: null });
  }

  /**
   * The first message matching `match` received at or after index `from` (0: any ever received;
   * default: from now on).
   */
  next<M extends WorkerMessage>(match: ((m: WorkerMessage) => m is M) | ((m: WorkerMessage) => boolean), from = this.received.length, timeoutMs = 5_000): Promise<M> {
    const found = this.received.slice(from).find(match);
    if (found) return Promise.resolve(found as M);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no such message from the worker within ${timeoutMs} ms; got ${JSON.stringify(this.received.slice(from)).slice(0, 2_000)}`)), timeoutMs);
      this.waiters.push({ from, match, resolve: (m) => (clearTimeout(timer), resolve(m as M)) });
    });
  }

  /**
   * A round trip: "ping" answered by "pong". The worker handles messages in order and posts in
   * order, so what it posted for every earlier message, synchronously, arrived before the pong.
   */
  async roundTrip(): Promise<void> {
    await this.next((m) => m.t === "pong", this.sendAndMark({ t: "ping" }));
  }

  /** Sends `message` and returns the index its answers start at. */
  sendAndMark(message: HostMessage): number {
    const from = this.received.length;
    this.send(message);
    return from;
  }

  /** Every "events" message (committed events told to the host without a result) received from index `from` on, their events flattened. */
  relayed(from = 0): CommittedEvent[] {
    return this.received.slice(from).flatMap((m) => (m.t === "events" ? m.events : []));
  }

  /** Sends "stop" (waiting up to `waitMs` for acks) and resolves once the worker said "stopped" and closed. */
  async stop(waitMs = 1_000): Promise<void> {
    if (this.closed) return;
    const from = this.sendAndMark({ t: "stop", waitMs });
    await this.next((m) => m.t === "stopped", from);
    this.worker.terminate();
    await this.closing;
  }

  terminate(): Promise<void> {
    this.port?.close();
    this.worker.terminate();
    return this.closing;
  }

  /** The plugin's database, read on a connection of its own (what is committed). */
  read<T>(sql: string, ...params: Array<string | number | null>): T[] {
    const db = new Database(join(this.dataDir, `${this.pluginName}.sqlite`), { readonly: true });
    try {
      return db.query(sql).all(...params) as T[];
    } finally {
      db.close();
    }
  }

  /** The outbox as committed: seq, type and whether it is marked sent. */
  outbox(): Array<{ seq: number; type: string; sent: boolean }> {
    return this.read<{ seq: number; type: string; sent: number }>("SELECT seq, type, sent FROM _plinth_outbox_state ORDER BY seq").map((r) => ({ ...r, sent: r.sent === 1 }));
  }

  pluginName = "w";

  async [Symbol.asyncDispose](): Promise<void> {
    await this.terminate();
  }

  private receive(m: WorkerMessage): void {
    const index = this.received.push(m) - 1;
    for (const w of [...this.waiters]) {
      if (index >= w.from && w.match(m)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  }
}
