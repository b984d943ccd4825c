/**
 * Runs inside a plugin's Bun Worker: loads the plugin, opens its own SQLite
 * file, applies migrations, then serves the host's requests. Must stay light:
 * no aedes, Elysia or MQTT.js here.
 */
import { heapSize } from "bun:jsc";
import type { Database } from "bun:sqlite";
import { builtinServices } from "../../services/index";
import { PlinthError } from "../errors";
import { createLogger, type LogFormat, type LogLevel, type Logger } from "../log";
import { createContext, type ContextBase, type Origin } from "../sdk/context";
import type { CallOptions, PluginDefinition } from "../sdk/define";
import { validatePlugin } from "../sdk/manifest";
import { registerSdkModule } from "../sdk/module";
import type { WireError } from "../errors";
import { serviceOfSource, type CloudEvent, type CommittedEvent } from "../protocol";
import { batched, decode, encode, type DeliveryOutcome, type HostMessage, type HttpRequest, type HttpResponse, type PluginSource, type WorkerMessage } from "./channel";
import { openDatabase } from "./database";
import { compile, validate, type Compiled, type Handler } from "./handlers";
import { Inbox } from "./inbox";
import { Outbox } from "./outbox";
import { UnitOfWork, type Done } from "./unit";

declare const self: Worker;

let plugin: PluginDefinition;
let dataDir = "";
let retention = { count: 10_000, ms: Number.POSITIVE_INFINITY };
let groupCommitMs = 0;
let outbox: Outbox;
let inbox: Inbox;
let subscriptionFilters: string[] = [];
let unit: UnitOfWork;
let base: ContextBase;
let db: Database | undefined;
let log: Logger = createLogger();
let routes: Compiled[] = [];
let routeNames: string[] = [];
let actions = new Map<string, Compiled>();
let subscriptions: Compiled[] = [];
let nextCall = 1;
const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

/**
 * Replies leave together at the end of the current task: a batch of requests handled in one go
 * answers in one postMessage. (A microtask, not a later turn: nothing waits behind a timer or a crash.)
 */
const sender = batched<WorkerMessage>((message) => self.postMessage(encode(message)), queueMicrotask);
const post = sender.post;

async function loadDefinition(source: PluginSource): Promise<unknown> {
  if (source.kind === "builtin") {
    const load = builtinServices[source.name];
    if (!load) throw new PlinthError("PLT_PLUGIN_LOAD", `no built-in service "${source.name}"`);
    return (await load()).default;
  }
  registerSdkModule();
  const mod = (await import(source.path)) as { default?: unknown };
  return mod.default;
}

/** Phase 1: import and validate the plugin; the host then checks its name is free. */
async function init(msg: Extract<HostMessage, { t: "init" }>): Promise<void> {
  try {
    const validated = validatePlugin(await loadDefinition(msg.source));
    plugin = validated.plugin;
    dataDir = msg.dataDir;
    retention = { count: msg.retainSent, ms: msg.retainSentMs ?? Number.POSITIVE_INFINITY };
    groupCommitMs = msg.groupCommitMs;
    log = createLogger({ name: plugin.name, level: msg.logLevel as LogLevel, format: msg.logFormat as LogFormat });
    routes = Object.values(plugin.routes ?? {}).map(compile);
    routeNames = validated.manifest.routes.map((r) => `${r.method} ${r.path}`);
    actions = new Map(Object.entries(plugin.actions ?? {}).map(([k, v]) => [k, compile(v)]));
    subscriptions = Object.values(plugin.subscribe ?? {}).map(compile);
    subscriptionFilters = validated.manifest.subscriptions;
    post({ t: "loaded", manifest: validated.manifest });
  } catch (err) {
    post({ t: "failed", error: PlinthError.from(err, "PLT_PLUGIN_LOAD").toWire() });
  }
}

/** Phase 2: open the plugin's own database, apply its migrations, and start serving. */
function open(msg: Extract<HostMessage, { t: "open" }>): void {
  try {
    db = openDatabase(dataDir, plugin);
    outbox = new Outbox(db, retention.count, retention.ms);
    outbox.prune();
    inbox = new Inbox(db);
    // A group's replies leave as soon as it commits: the host answers them while this thread goes on.
    unit = new UnitOfWork(db, outbox, (events) => post({ t: "events", events }), groupCommitMs, sender.flush);
    base = {
      service: plugin.name,
      db,
      log,
      config: Object.freeze({ ...msg.config }),
      call,
    };
    post({ t: "ready", cursors: inbox.cursors() });
  } catch (err) {
    post({ t: "failed", error: PlinthError.from(err, "PLT_PLUGIN_LOAD").toWire() });
  }
}

/** ctx.call: through the host, within the handler's deadline and as its caller; a fallback answers instead of a failure. */
async function call<T>(target: string, params: unknown, options: CallOptions<T> | undefined, origin: Origin): Promise<T> {
  const limit = options?.timeoutMs ? Date.now() + options.timeoutMs : Number.POSITIVE_INFINITY;
  try {
    return await new Promise<T>((resolve, reject) => {
      const id = nextCall++;
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      const deadline = Math.min(origin.deadline, limit);
      post({ t: "call", id, target, params, deadline: Number.isFinite(deadline) ? deadline : null, identity: origin.identity });
    });
  } catch (err) {
    if (!options || !("fallback" in options)) throw err;
    const fallback = options.fallback;
    return typeof fallback === "function" ? await (fallback as (e: PlinthError) => T | Promise<T>)(err as PlinthError) : (fallback as T);
  }
}

const NO_ORIGIN: Origin = { deadline: Infinity, identity: null };

interface Prepared {
  fn: Handler;
  extra: object;
  /** Deadline and identity of the caller; calls made by the handler share them (default: none). */
  origin?: Origin;
  transaction: boolean;
  /** Turns the handler's return value into the reply (HTTP wraps it with status and headers). */
  finish?: (value: unknown) => unknown;
}

/** Runs one handler as a unit of work: its reply value and committed events (synchronously when the handler is). */
function execute(prepare: () => Prepared): Done<unknown> | Promise<Done<unknown>> {
  const { fn, extra, finish, transaction, origin = NO_ORIGIN } = prepare();
  const done = unit.run((scope) => fn(createContext(base, extra, scope, origin)), { transaction });
  if (!finish) return done;
  const reply = ({ value, events }: Done<unknown>) => ({ value: finish(value), events });
  return done instanceof Promise ? done.then(reply) : reply(done);
}

/** A handler's failure as it may leave the worker: plugin errors as thrown, anything else logged and generic. */
function failure(err: unknown, what: string): WireError {
  if (err instanceof PlinthError) return err.toWire();
  log.error(`${what} threw`, { error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  return { ...PlinthError.from(err).toWire(), message: `${base.service}: ${what} failed` };
}

/** Runs one handler and posts its result once committed; its committed events travel back with it. */
function run(id: number, what: string, prepare: () => Prepared): void {
  const fail = (err: unknown) => post({ t: "result", id, ok: false, error: failure(err, what) });
  const ok = ({ value, events }: Done<unknown>) => unit.whenCommitted(() => post({ t: "result", id, ok: true, value, events }), fail);
  try {
    const done = execute(prepare);
    if (done instanceof Promise) done.then(ok).catch(fail);
    else ok(done);
  } catch (err) {
    fail(err);
  }
}

/** Hands a batch of events to one subscription, in order, each in its own unit of work; stops at the first failure. */
async function deliver(msg: Extract<HostMessage, { t: "deliver" }>): Promise<void> {
  const events: CommittedEvent[] = [];
  let handled = 0;
  for (const item of msg.items) {
    try {
      events.push(...(await execute(() => eventHandler(msg.subscription, item.topic, item.event, true))).events);
      handled++;
    } catch (err) {
      const outcome: DeliveryOutcome = { handled, error: failure(err, `subscription ${item.topic}`) };
      return answer(msg.id, outcome, events);
    }
  }
  answer(msg.id, { handled } satisfies DeliveryOutcome, events);
}

/** Posts a successful result once what produced it is committed; a failed commit fails it. */
function answer(id: number, value: unknown, events: CommittedEvent[] = []): void {
  unit.whenCommitted(
    () => post({ t: "result", id, ok: true, value, events }),
    (err) => post({ t: "result", id, ok: false, error: failure(err, "commit") }),
  );
}

/** Sends every committed-but-unsent outbox row to the host, in commit order. */
function relay(): void {
  let after = 0;
  for (let batch = outbox.unsent(after); batch.length > 0; batch = outbox.unsent(after)) {
    post({ t: "events", events: batch });
    after = batch[batch.length - 1]!.seq;
  }
}

/** A service event's place in its source's log, from its CloudEvent (`plinth/<service>`, `sequence`). */
function durableOf(event: CloudEvent): { source: string; seq: number } | null {
  const seq = Number(event.sequence);
  const source = serviceOfSource(event.source);
  return source !== null && Number.isInteger(seq) ? { source, seq } : null;
}

/** Runs `after` once `value` (maybe a promise) has resolved, keeping synchronous results synchronous. */
function then<T>(value: T | Promise<T>, after: () => void): T | Promise<T> {
  if (value instanceof Promise) return value.then((v) => (after(), v));
  after();
  return value;
}

/**
 * A subscription handler for one event. Service events are handled once in effect: an event
 * the cursor has passed is skipped, and the cursor moves in the handler's own transaction.
 */
function eventHandler(index: number, topic: string, event: CloudEvent, checkCursor: boolean): Prepared {
  const sub = subscriptions[index];
  const filter = subscriptionFilters[index];
  if (!sub || filter === undefined) throw new PlinthError("PLT_INTERNAL", `unknown subscription ${index}`);
  const durable = durableOf(event);
  const extra = { event, topic };
  if (!durable) return { fn: sub.handler, extra, transaction: sub.transaction };
  if (checkCursor && inbox.handled(filter, durable.source, durable.seq)) return { fn: () => ({ skipped: true }), extra, transaction: true };
  const fn = (ctx: unknown) => then(sub.handler(ctx), () => inbox.advance(filter, durable.source, durable.seq));
  return { fn, extra, transaction: sub.transaction };
}

const JSON_TYPE = "application/json;charset=utf-8";

function httpHandler(req: HttpRequest): Prepared {
  const route = routes[req.route];
  if (!route) throw new PlinthError("PLT_NOT_FOUND", "route not found");
  const set: { status?: number; headers: Record<string, string> } = { headers: {} };
  const extra = {
    body: validate("body", route.body, req.body),
    query: validate("query", route.query, req.search ? Object.fromEntries(new URLSearchParams(req.search)) : {}, true),
    params: validate("params", route.params, req.params, true),
    headers: req.headers,
    set,
  };
  const finish = (body: unknown): HttpResponse => {
    const headers = set.headers;
    if (!Object.keys(headers).some((name) => name.toLowerCase() === "content-type")) headers["content-type"] = JSON_TYPE;
    return { status: set.status ?? (body === undefined ? 204 : 200), headers, body: JSON.stringify(body ?? null) };
  };
  return { fn: route.handler, extra, finish, transaction: route.transaction, origin: { deadline: req.deadline ?? Infinity, identity: req.identity ?? null } };
}

self.onmessage = (e: MessageEvent<string>) => {
  handle(decode<HostMessage>(e.data));
  // What this message's handlers wrote commits now, in one go; their replies leave with it.
  unit?.settle();
};

function handle(msg: HostMessage): void {
  switch (msg.t) {
    case "batch":
      for (const item of msg.items) handle(item);
      break;
    case "init":
      void init(msg);
      break;
    case "open":
      open(msg);
      break;
    case "http":
      run(msg.id, `${routeNames[msg.req.route]}`, () => httpHandler(msg.req));
      break;
    case "action":
      run(msg.id, `action ${msg.action}`, () => {
        const action = actions.get(msg.action);
        if (!action) throw new PlinthError("PLT_ACTION_NOT_FOUND", `${base.service} has no action "${msg.action}"`);
        const params = validate("params", action.params, msg.params);
        const origin = { deadline: msg.deadline ?? Infinity, identity: msg.identity ?? null };
        return { fn: action.handler, extra: { params, caller: msg.caller }, transaction: action.transaction, origin };
      });
      break;
    case "event":
      run(msg.id, `subscription ${msg.topic}`, () => eventHandler(msg.subscription, msg.topic, msg.event, true));
      break;
    case "deliver":
      void deliver(msg);
      break;
    case "bury": {
      unit.settle();
      const durable = durableOf(msg.event);
      if (durable) {
        const subscription = subscriptionFilters[msg.subscription]!;
        inbox.bury({ subscription, topic: msg.topic, ...durable, event: msg.event, error: msg.error, attempts: msg.attempts });
      }
      answer(msg.id, null);
      break;
    }
    case "deadletters":
      post({ t: "result", id: msg.id, ok: true, value: inbox.deadLetters(), events: [] });
      break;
    case "redrive":
      run(msg.id, `redrive ${msg.letter}`, () => {
        const letter = inbox.deadLetter(msg.letter);
        if (!letter) throw new PlinthError("PLT_NOT_FOUND", `no dead letter ${msg.letter}`);
        const index = subscriptionFilters.indexOf(letter.subscription);
        if (index < 0) throw new PlinthError("PLT_NOT_FOUND", `subscription ${letter.subscription} no longer exists`);
        const prepared = eventHandler(index, letter.topic, letter.event, false);
        const fn = prepared.fn;
        return { ...prepared, fn: (ctx: unknown) => then(fn(ctx), () => inbox.forget(letter.id)) };
      });
      break;
    case "reply": {
      const waiter = pending.get(msg.id);
      if (!waiter) break;
      pending.delete(msg.id);
      if (msg.ok) waiter.resolve(msg.value);
      else waiter.reject(PlinthError.fromWire(msg.error));
      break;
    }
    case "sent":
      outbox.markSent(msg.seqs);
      break;
    case "relay":
      unit.settle(); // only committed rows are events
      relay();
      break;
    case "ping":
      // heapSize, not heapStats: the latter walks the whole heap (135 ms at 160 MB).
      post({ t: "pong", heapBytes: heapSize() });
      break;
    case "stop":
      unit?.settle();
      db?.close();
      post({ t: "stopped" });
      break;
  }
}
