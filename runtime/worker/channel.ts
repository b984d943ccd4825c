/**
 * The only message format between the host (main thread) and a plugin worker.
 * Messages travel as JSON text (`encode`/`decode`): Bun's structured clone
 * cost 3× as much per message as JSON.stringify plus a string copy (measured:
 * 5.4 vs 1.8 µs to send a request, 1.7 vs 0.6 µs to receive a result). So
 * values crossing a service boundary are JSON values: a Date arrives as its ISO
 * string, and a number that JSON cannot hold (Infinity, NaN) as null.
 */
import { PlinthError, type WireError } from "../errors";
import type { CloudEvent, CommittedEvent, Identity, Manifest } from "../protocol";
import type { StorageState } from "../storage/faults";
import type { StoreOptions } from "../storage/open";
import type { Cursor } from "./inbox";
import { nestsDeeperThan } from "../json-depth";

/** Where the worker finds its plugin: a file on disk or a built-in service bundled in the binary. */
export type PluginSource = { kind: "file"; path: string } | { kind: "builtin"; name: string };

export interface HttpRequest {
  route: number;
  /** When the caller stops waiting (Date.now() ms): shared by every call the handler makes. */
  deadline?: number;
  /** The caller, as the gateway authenticated it. */
  identity?: Identity | null;
  params: Record<string, string>;
  /** The query string without "?": parsed in the worker, off the gateway's thread. */
  search: string;
  headers: Record<string, string>;
  body: unknown;
}

export interface HttpResponse {
  status: number;
  /** Always with a content-type (JSON unless the handler set one). */
  headers: Record<string, string>;
  /** The body as JSON text, encoded in the worker (off the gateway's thread); null: none. */
  body: string | null;
}

export type HostMessage =
  /** `retainSentMs` null: no age limit (JSON has no Infinity). */
  | { t: "init"; source: PluginSource; dataDir: string; retainSent: number; retainSentMs: number | null; groupCommitMs: number; store: StoreOptions; logLevel: string; logFormat: string }
  /** The host accepted the plugin's name: open its database, migrate, and report ready. Carries the plugin's own section of `plugins.config`, and nobody else's. */
  | { t: "open"; config: Record<string, unknown> }
  | { t: "http"; id: number; req: HttpRequest }
  | { t: "action"; id: number; action: string; params: unknown; caller: string | null; deadline?: number; identity?: Identity | null }
  | { t: "event"; id: number; subscription: number; topic: string; event: CloudEvent }
  /** Several events for one subscription, handled in order; answered with a DeliveryOutcome. */
  | { t: "deliver"; id: number; subscription: number; items: Array<{ topic: string; event: CloudEvent }> }
  /** Give up on an event: store it as a dead letter and move the subscription's cursor past it. */
  | { t: "bury"; id: number; subscription: number; topic: string; event: CloudEvent; error: string; attempts: number }
  | { t: "deadletters"; id: number }
  /** Run a dead letter's subscription handler again; on success the letter is removed. */
  | { t: "redrive"; id: number; letter: number }
  | { t: "reply"; id: number; ok: true; value: unknown }
  | { t: "reply"; id: number; ok: false; error: WireError }
  /** Publish (on the events port) every committed event not yet marked sent. */
  | { t: "relay" }
  /** Heartbeat: the worker answers "pong" (with its heap size) as soon as its event loop is free. */
  | { t: "ping" }
  /** Close the database and answer "stopped", after waiting up to `waitMs` for the acks of events being published. */
  | { t: "stop"; waitMs: number }
  /** Several messages in one postMessage (what one turn of the event loop produced), handled in order. */
  | { t: "batch"; items: HostMessage[] };

/** How far a "deliver" batch got: `handled` events done, then `error` for the next one (if any). */
export interface DeliveryOutcome {
  handled: number;
  error?: WireError;
}

export type WorkerMessage =
  /** Imported and validated; nothing opened yet. */
  | { t: "loaded"; manifest: Manifest }
  /** Open and migrated; `cursors` say how far each subscription has handled each source's events. */
  | { t: "ready"; cursors: Cursor[] }
  | { t: "failed"; error: WireError }
  | { t: "result"; id: number; ok: true; value: unknown; events: CommittedEvent[] }
  /** Committed events from the outbox that still need publishing (answer to "relay"). */
  | { t: "events"; events: CommittedEvent[] }
  | { t: "result"; id: number; ok: false; error: WireError }
  /**
   * A ctx.call. `request`: the host's id of the request whose handler calls (null: none, e.g. a
   * subscription); the host takes the caller's identity and deadline from that request, never from
   * the worker. `deadline`: the worker's own limit (a call's timeoutMs), null: none.
   */
  | { t: "call"; id: number; target: string; params: unknown; deadline: number | null; request: number | null }
  | { t: "pong"; heapBytes: number }
  /** The service's storage turned faulty (disk full, read-only, ...) or, null, takes writes again: sent on transitions only. */
  | { t: "storage"; fault: StorageState | null }
  /** Several messages in one postMessage, handled in order. */
  | { t: "batch"; items: WorkerMessage[] }
  | { t: "stopped" };

/**
 * The events port: a MessagePort from a plugin's worker to wherever its events are published (the
 * bus), handed to the worker with `{ t: "events-port", relay }` (relay: publish what is unsent at once).
 * The worker sends what it committed as JSON text (encode), at most one batch per turn; the bus
 * answers each batch with a PublishAck (structured, it is the runtime's own).
 */
export interface PublishBatch {
  events: CommittedEvent[];
}

export interface PublishAck {
  /** Taken by the broker: marked sent. */
  sent: number[];
  /** Refused (the broker's store failed, say): left unsent, published again after a backoff. */
  unsent: number[];
  error?: string;
  /**
   * Event types nobody wanted, as the broker's SubscriptionClock read `at`, and with the port's first
   * such answer the clock's buffer (see bus/event-port.ts).
   */
  quiet?: { types: string[]; at: number; clock?: SharedArrayBuffer };
}

/**
 * How deep a message may nest, its envelope included. JSON.parse reads any depth, but
 * JSON.stringify and other recursive code overflow the stack somewhere past 25,000 levels (less
 * on a busy stack), and a RangeError there, outside any request, would end the thread. Values
 * crossing between threads are bounded well below that, on both sides: a value nested deeper
 * fails its own message (the request or call that carried it), nothing else.
 */
export const MAX_DEPTH = 1_000;
/** Event data may nest this deep: its envelopes (deliver → items → event → data) stay within MAX_DEPTH. */
export const MAX_DATA_DEPTH = MAX_DEPTH - 10;

/**
 * A sender that gathers messages and sends them together when `schedule` fires, on `flush()`, or
 * once `maxItems` are waiting: one message as it is, several as a "batch" (handled in order by the
 * receiver). One postMessage per batch instead of one per message: its fixed cost was the largest
 * item on the hot path. Each message is encoded as it is posted: one that cannot cross (see
 * encode) throws to its poster and leaves the others untouched.
 */
export function batched<M extends HostMessage | WorkerMessage>(
  send: (text: string) => void,
  schedule: (flush: () => void) => void,
  maxItems = Number.POSITIVE_INFINITY,
): { post: (message: M) => void; flush: () => void } {
  // The waiting messages' texts, comma-separated (cheaper than an array joined at the end).
  let items = "";
  let count = 0;
  const flush = () => {
    if (count === 0) return; // flushed early already
    const out = count === 1 ? items : `{"t":"batch","items":[${items}]}`;
    items = "";
    count = 0;
    send(out);
  };
  const post = (message: M) => {
    const text = encode(message);
    items = count === 0 ? text : `${items},${text}`;
    if (++count === 1) schedule(flush);
    else if (count >= maxItems) flush();
  };
  return { post, flush };
}

/**
 * A message as it crosses the thread boundary. Throws PLT_BAD_REQUEST, naming why, for a message
 * JSON cannot carry (a BigInt, a cycle) or nested deeper than MAX_DEPTH.
 */
export function encode(message: HostMessage | WorkerMessage | PublishBatch): string {
  let text: string;
  try {
    text = JSON.stringify(message);
  } catch (err) {
    throw new PlinthError("PLT_BAD_REQUEST", err instanceof RangeError ? `value nested deeper than ${MAX_DEPTH} levels` : `value JSON cannot carry (${(err as Error).message})`);
  }
  if (nestsDeeperThan(text, MAX_DEPTH)) throw new PlinthError("PLT_BAD_REQUEST", `value nested deeper than ${MAX_DEPTH} levels`);
  return text;
}

/** A message (or batch) as it arrived; throws PLT_BAD_REQUEST for anything else than JSON text within MAX_DEPTH (and a batch's envelope). */
export function decode<M extends HostMessage | WorkerMessage | PublishBatch>(data: unknown): M {
  if (typeof data !== "string") throw new PlinthError("PLT_BAD_REQUEST", `message is not JSON text (${typeof data})`);
  if (nestsDeeperThan(data, MAX_DEPTH + 2)) throw new PlinthError("PLT_BAD_REQUEST", `message nested deeper than ${MAX_DEPTH} levels`);
  try {
    return JSON.parse(data) as M;
  } catch (err) {
    throw new PlinthError("PLT_BAD_REQUEST", `message is not JSON (${(err as Error).message})`);
  }
}

