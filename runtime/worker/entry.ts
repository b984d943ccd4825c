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
import type { PluginDefinition } from "../sdk/define";
import { validatePlugin } from "../sdk/manifest";
import { registerSdkModule } from "../sdk/module";
import type { WireError } from "../errors";
import type { CommittedEvent } from "../protocol";
import { logRecordFile } from "../storage/generation";
import { StorageHealth, storageError } from "../storage/faults";
import type { StoreOptions } from "../storage/open";
import { Calls } from "./calls";
import { batched, decode, type DeliveryOutcome, type HostMessage, type PluginSource, type WorkerMessage } from "./channel";
import { describeThrown } from "./fault";
import { openDatabase } from "./database";
import { Inbox } from "./inbox";
import { Outbox } from "./outbox";
import { Handlers, durableOf, type Prepared } from "./prepare";
import { Publisher } from "./publisher";
import { UnitOfWork, type Done } from "./unit";

declare const self: Worker;

let plugin: PluginDefinition;
let dataDir = "";
let retention = { count: 10_000, ms: Number.POSITIVE_INFINITY };
let groupCommitMs = 0;
let store: StoreOptions = { durability: "full" };
let outbox: Outbox;
let inbox: Inbox;
let handlers: Handlers;
let unit: UnitOfWork;
let base: ContextBase;
let db: Database | undefined;
let log: Logger = createLogger();

/**
 * Replies leave together at the end of the current task: a batch of requests handled in one go
 * answers in one postMessage. (A microtask, not a later turn: nothing waits behind a timer or a crash.)
 */
const sender = batched<WorkerMessage>((text) => self.postMessage(text), queueMicrotask);
const post = sender.post;
const calls = new Calls(post);
/** Committed events go from here to the bus, over the events port the host hands over. */
const publisher = new Publisher(
  (seqs) => {
    if (!db) return; // stopped: published again at the next start
    outbox.markSentLater(seqs);
    // Written with the next group commit; when none comes soon, on their own.
    ackTimer ??= setTimeout(flushAcks, ACK_FLUSH_MS);
  },
  () => db && guarded({ t: "relay" }),
  () => log,
);

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
    store = msg.store;
    log = createLogger({ name: plugin.name, level: msg.logLevel as LogLevel, format: msg.logFormat as LogFormat });
    handlers = new Handlers(plugin.name, plugin, validated.manifest, () => inbox);
    post({ t: "loaded", manifest: validated.manifest });
  } catch (err) {
    post({ t: "failed", error: PlinthError.from(err, "PLT_PLUGIN_LOAD").toWire() });
  }
}

/** Phase 2: open the plugin's own database, apply its migrations, and start serving. */
function open(msg: Extract<HostMessage, { t: "open" }>): void {
  try {
    db = openDatabase(dataDir, plugin, store, log);
    outbox = new Outbox(db, retention.count, retention.ms, logRecordFile(dataDir, plugin.name), (why, generation) =>
      log.warn("event log went back: a new generation starts", { why, generation: generation.id, from: generation.start }),
    );
    outbox.prune();
    inbox = new Inbox(db);
    // A group's replies leave as soon as it commits: the host answers them while this thread goes on.
    unit = new UnitOfWork(db, outbox, relayCommitted, groupCommitMs, sender.flush, storageHealth());
    base = {
      service: plugin.name,
      db,
      log,
      config: Object.freeze({ ...msg.config }),
      call: calls.call,
    };
    post({ t: "ready", cursors: inbox.cursors() });
  } catch (err) {
    post({ t: "failed", error: PlinthError.from(err, "PLT_PLUGIN_LOAD").toWire() });
  }
}

const NO_ORIGIN: Origin = { deadline: Infinity, identity: null, request: null };

/** Runs one handler as a unit of work: its reply value and committed events (synchronously when the handler is). */
function execute(prepare: () => Prepared): Done<unknown> | Promise<Done<unknown>> {
  const { fn, extra, finish, transaction, bookkeeping, origin = NO_ORIGIN } = prepare();
  const done = unit.run((scope) => fn(createContext(base, extra, scope, origin)), { transaction, bookkeeping });
  if (!finish) return done;
  const reply = ({ value, events }: Done<unknown>) => ({ value: finish(value), events });
  return done instanceof Promise ? done.then(reply) : reply(done);
}

/**
 * A handler's failure as it may leave the worker: plugin errors as thrown, anything else (any
 * value at all: a string, null, a Symbol, an object whose toString throws) logged and generic.
 */
function failure(err: unknown, what: string): WireError {
  if (err instanceof PlinthError) return err.toWire();
  const fault = unit?.failed(err);
  if (fault) return storageError(plugin.name, fault).toWire();
  log.error(`${what} threw`, { error: describeThrown(err) });
  return generic(what);
}

function generic(what: string): WireError {
  return { code: "PLT_HANDLER_ERROR", message: `${plugin.name}: ${what} failed`, status: 500, retryable: false };
}

/** Posts a failed result; an error that cannot cross itself (its `data` holds a BigInt, say) leaves as the generic one. */
function postFailure(id: number, err: unknown, what: string): void {
  try {
    post({ t: "result", id, ok: false, error: failure(err, what) });
  } catch (unsendable) {
    log.error(`${what}: its error cannot be sent`, { error: describeThrown(unsendable) });
    post({ t: "result", id, ok: false, error: generic(what) });
  }
}

/**
 * Posts a successful result. A value that cannot cross (JSON cannot carry it, or it nests too
 * deep) fails this request alone; the events it committed still leave, on their own.
 */
function postResult(id: number, value: unknown, events: CommittedEvent[], what: string): void {
  try {
    if (typeof value === "function" || typeof value === "symbol") throw new PlinthError("PLT_BAD_REQUEST", `a ${typeof value} is not a JSON value`);
    post({ t: "result", id, ok: true, value, events });
  } catch (err) {
    log.error(`${what} returned a value that cannot be sent`, { error: describeThrown(err) });
    if (events.length > 0) relayCommitted(events);
    post({ t: "result", id, ok: false, error: { ...generic(what), message: `${plugin.name}: ${what} returned a value JSON cannot carry` } });
    return;
  }
  if (events.length > 0) publisher.publish(events);
}

/**
 * Committed events without a result to carry them: told to the host (for its commit listeners and
 * subscribers) and published. Their data was bounded when they were committed; those that cannot
 * leave stay unsent.
 */
function relayCommitted(events: CommittedEvent[]): void {
  try {
    post({ t: "events", events });
  } catch (err) {
    log.error("committed events cannot be sent", { from: events[0]!.seq, error: describeThrown(err) });
  }
  publisher.publish(events);
}

/** Runs one handler and posts its result once committed; its committed events travel back with it. */
function run(id: number, what: string, prepare: () => Prepared): void {
  const fail = (err: unknown) => postFailure(id, err, what);
  const ok = ({ value, events }: Done<unknown>) => answer(id, value, events, what);
  try {
    const done = execute(prepare);
    if (done instanceof Promise) done.then(ok).catch(fail);
    else ok(done);
  } catch (err) {
    fail(err);
  }
}

/** Per subscription, the batch (or dead letter) being handled: the next one waits for it (see inTurn). */
const delivering = new Map<number, Promise<void>>();

/**
 * One batch at a time per subscription, in order. The host sends a batch again (or buries its
 * event) when it stopped waiting for it (a timeout) while this thread may still be handling it: the
 * second one runs once the first is done, and its cursor check then skips what the first handled,
 * instead of handling it twice. So a handler that never returns holds its own subscription (only
 * that one) until the worker restarts, as a stuck consumer holds its partition.
 */
function inTurn(subscription: number, work: () => void | Promise<void>): void {
  const running = delivering.get(subscription);
  const run = running ? running.then(work, work) : Promise.resolve(work());
  delivering.set(subscription, run);
  const done = () => {
    if (delivering.get(subscription) === run) delivering.delete(subscription);
  };
  run.then(done, done);
}

/** Stores a dead letter, unless the event was handled meanwhile (by a batch the host had given up on). */
function bury(msg: Extract<HostMessage, { t: "bury" }>): void {
  try {
    unit.settle();
    const durable = durableOf(msg.event);
    const subscription = handlers.filters[msg.subscription]!;
    if (durable && !inbox.handled(subscription, durable.source, durable.seq, durable.generation)) {
      inbox.bury({ subscription, topic: msg.topic, ...durable, event: msg.event, error: msg.error, attempts: msg.attempts });
    }
  } catch (err) {
    return postFailure(msg.id, err, `dead letter for ${msg.topic}`);
  }
  answer(msg.id, null);
}

/**
 * Hands a batch of events to one subscription, in order, each in its own unit of work; stops at the
 * first failure. Synchronous handlers run back to back, so the batch shares its group commits.
 */
async function deliverBatch(msg: Extract<HostMessage, { t: "deliver" }>): Promise<void> {
  const events: CommittedEvent[] = [];
  let handled = 0;
  for (const item of msg.items) {
    try {
      const done = execute(() => handlers.event(msg.subscription, item.topic, item.event, true));
      // One by one: a spread of 100,000 events as arguments would overflow the stack.
      for (const e of (done instanceof Promise ? await done : done).events) events.push(e);
      handled++;
    } catch (err) {
      const outcome: DeliveryOutcome = { handled, error: failure(err, `subscription ${item.topic}`) };
      return answer(msg.id, outcome, events);
    }
  }
  answer(msg.id, { handled } satisfies DeliveryOutcome, events);
}

/** Posts a successful result once what produced it is committed; a failed commit fails it. */
function answer(id: number, value: unknown, events: CommittedEvent[] = [], what = "commit"): void {
  unit.whenCommitted(
    () => postResult(id, value, events, what),
    (err) => postFailure(id, err, what),
  );
}

/** How long acks ("sent") may wait for a group commit to ride along with before they are written on their own. */
const ACK_FLUSH_MS = 20;
let ackTimer: Timer | null = null;

/** Writes the held acks now; a failure leaves those rows unsent (published again at the next relay). */
function flushAcks(): void {
  if (ackTimer) clearTimeout(ackTimer);
  ackTimer = null;
  try {
    outbox.flushSent();
    unit.committed();
  } catch (err) {
    // A storage fault is logged once, when the store turns degraded (see storageHealth).
    if (!unit.failed(err)) log.error("marking published events sent failed", { error: err instanceof Error ? err.message : String(err) });
  }
}

/**
 * The service's storage health. Its transitions are logged (with SQLite's code and message) and told
 * to the host (for /health). Once writes commit again, what the fault left unsent (events whose
 * publication or acks failed meanwhile) is relayed.
 */
function storageHealth(): StorageHealth {
  const health = new StorageHealth(dataDir);
  health.listen((fault, previous) => {
    if (fault) log.error("storage failing", { service: plugin.name, reason: fault.reason, code: fault.cause, error: fault.detail });
    else log.info("storage recovered", { service: plugin.name, reason: previous?.reason, since: previous?.since });
    post({ t: "storage", fault });
    // As the host's "relay" asks, on a turn of its own (not inside the commit that just succeeded).
    if (!fault) setTimeout(() => db && guarded({ t: "relay" }), 0);
  });
  return health;
}

/** A clean stop's last sequence number for the log's record; if it cannot be written, the next start goes on as after a crash. */
function closeOutbox(): void {
  try {
    outbox.close();
  } catch (err) {
    log.warn("the event log's record could not be written at stop", { error: describeThrown(err) });
  }
}

function stop(): void {
  publisher.close();
  unit?.settle();
  if (db) flushAcks();
  if (db) closeOutbox();
  db?.close();
  db = undefined;
  post({ t: "stopped" });
}

/** Publishes every committed-but-unsent outbox row, in commit order. */
function relay(): void {
  let after = 0;
  for (let batch = outbox.unsent(after); batch.length > 0; batch = outbox.unsent(after)) {
    publisher.publish(batch);
    after = batch[batch.length - 1]!.seq;
  }
}

self.onmessage = (e: MessageEvent<string>) => {
  // The events port (the only message that is not JSON text): from the host, before the plugin can listen.
  if (e.ports.length > 0) {
    const { relay } = e.data as unknown as { relay?: boolean };
    return publisher.attach(e.ports[0]!, relay === true && db !== undefined);
  }
  let msg: HostMessage | undefined;
  try {
    msg = decode<HostMessage>(e.data);
  } catch (err) {
    log.error("unreadable message from the host", { error: describeThrown(err) });
  }
  if (msg) guarded(msg);
  // What this message's handlers wrote commits now, in one go; their replies leave with it.
  unit?.settle();
};

/** A fault of the runtime's own (a handler's fault becomes its request's error) is logged; the worker serves on. */
function guarded(msg: HostMessage): void {
  try {
    handle(msg);
  } catch (err) {
    log.error("handling a message from the host failed", { error: describeThrown(err) });
  }
}

function handle(msg: HostMessage): void {
  switch (msg.t) {
    case "batch":
      for (const item of msg.items) guarded(item);
      break;
    case "init":
      void init(msg);
      break;
    case "open":
      open(msg);
      break;
    case "http":
      run(msg.id, `${handlers.routeNames[msg.req.route]}`, () => handlers.http(msg.id, msg.req));
      break;
    case "action":
      run(msg.id, `action ${msg.action}`, () => handlers.action(msg));
      break;
    case "event":
      run(msg.id, `subscription ${msg.topic}`, () => handlers.event(msg.subscription, msg.topic, msg.event, true));
      break;
    case "deliver":
      inTurn(msg.subscription, () => deliverBatch(msg));
      break;
    case "bury":
      inTurn(msg.subscription, () => bury(msg));
      break;
    case "deadletters":
      postResult(msg.id, inbox.deadLetters(), [], "deadletters");
      break;
    case "redrive":
      run(msg.id, `redrive ${msg.letter}`, () => handlers.redrive(msg.letter));
      break;
    case "reply":
      calls.reply(msg);
      break;
    case "relay":
      unit.settle(); // only committed rows are events
      flushAcks(); // nor are rows already published
      relay();
      break;
    case "ping":
      // heapSize, not heapStats: the latter walks the whole heap (135 ms at 160 MB).
      post({ t: "pong", heapBytes: heapSize() });
      break;
    case "stop":
      unit?.settle();
      // Events being published have their acks on the way: they are written before the database
      // closes (else the next start publishes those events again).
      void publisher.whenIdle(msg.waitMs).then(stop);
      break;
  }
}
