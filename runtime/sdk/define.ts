/**
 * The shape of a plugin, as its author writes it. `definePlugin` is an identity
 * function that gives the object its types; the worker validates it at load.
 */
import type { Database } from "bun:sqlite";
import type { Static, TSchema } from "@sinclair/typebox";
import type { Logger } from "../log";
import type { BreakerOverride, Policy } from "../../config/fields";
import type { PlinthError } from "../errors";
import type { CloudEvent, Identity } from "../protocol";

export interface CallOptions<T = unknown> {
  /**
   * Milliseconds before the call fails with PLT_TIMEOUT (default: config calls.timeoutMs). Never
   * longer than what is left of this handler's own deadline: a call chain shares one deadline.
   */
  timeoutMs?: number;
  /** Value (or function of the error) to return instead of failing. */
  fallback?: T | ((error: PlinthError) => T | Promise<T>);
}

/** What every handler gets. */
export interface Context {
  /** This service's name. */
  readonly service: string;
  /** This service's own SQLite database (`data/<service>.sqlite`, WAL). */
  readonly db: Database;
  readonly log: Logger;
  /** `plugins.config.<service>` from platform.config.ts. */
  readonly config: Readonly<Record<string, unknown>>;
  /**
   * Who is calling: the identity proven by the request's token or API key, carried along
   * `ctx.call` chains; null for anonymous callers and in event handlers.
   */
  readonly identity: Identity | null;
  /** Calls `"service.action"` through the platform (timeout + circuit breaker). */
  call<T = unknown>(target: string, params?: unknown, options?: CallOptions<T>): Promise<T>;
  /**
   * Records a CloudEvent for `events/<service>/<type>` in this service's outbox, in the
   * same transaction as the writes it describes; it is published once that commits.
   * In a synchronous handler that is the handler's own transaction (a handler that
   * throws emits nothing). In an async handler, emit inside `ctx.tx` to tie an event
   * to its writes; events emitted outside it commit when the handler returns.
   */
  emit(type: string, data?: unknown): void;
  /**
   * Runs `fn` (synchronous) in a transaction on `db` together with the events it emits.
   * Needed in async handlers for atomic writes + events; a savepoint in synchronous ones.
   */
  tx<T>(fn: () => T): T;
}

export interface RouteContext<B = unknown, Q = Record<string, string>, P = Record<string, string>> extends Context {
  readonly body: B;
  readonly query: Q;
  /** Path parameters (`/:id`), URL-decoded. */
  readonly params: P;
  readonly headers: Readonly<Record<string, string>>;
  /** Response status (default 200, or 204 when the handler returns nothing) and headers. */
  readonly set: { status?: number; headers: Record<string, string> };
}

export interface ActionContext<P = unknown> extends Context {
  readonly params: P;
  /** The calling service, or null when the gateway called. */
  readonly caller: string | null;
}

export interface EventContext<D = unknown> extends Context {
  readonly event: CloudEvent<D>;
  readonly topic: string;
}

type Awaitable<T> = T | Promise<T>;

/** Options every handler spec may set. */
export interface HandlerOptions {
  /** false: even a synchronous handler runs outside an implicit transaction (default true). */
  transaction?: boolean;
}

export interface RouteSpec<B extends TSchema = TSchema, Q extends TSchema = TSchema, P extends TSchema = TSchema> extends HandlerOptions {
  /** Who may call: "public", "authenticated" or a list of roles (default: config auth.defaultPolicy). */
  auth?: Policy;
  /**
   * GET routes: the gateway keeps answers for `ttlMs` (with an ETag; If-None-Match gets 304),
   * per caller unless the route is public. Events on the `invalidatedBy` topic filters
   * (e.g. "events/orders/#") clear them at once.
   */
  cache?: { ttlMs: number; invalidatedBy?: string[] };
  /** Requests per caller per window for this route (config gateway.rateLimits wins). */
  rateLimit?: { limit: number; windowMs: number };
  /** One line for the API docs. */
  summary?: string;
  /** TypeBox schema of the JSON body; a mismatch answers 400 PLT_VALIDATION naming the paths. */
  body?: B;
  /** TypeBox schema of the query string (values are converted to the schema's types). */
  query?: Q;
  /** TypeBox schema of the path parameters (converted like the query). */
  params?: P;
  handler(ctx: RouteContext<Static<B>, Static<Q>, Static<P>>): Awaitable<unknown>;
}

export interface ActionSpec<P extends TSchema = TSchema> extends HandlerOptions {
  /** A breaker of its own for calls to this action (otherwise it shares the service's). */
  breaker?: BreakerOverride;
  /** Safe to run twice: failed calls to it are retried (calls.retries) within the deadline. */
  idempotent?: boolean;
  params?: P;
  handler(ctx: ActionContext<Static<P>>): Awaitable<unknown>;
}

export interface EventSpec extends HandlerOptions {
  handler(ctx: EventContext): Awaitable<void>;
}

export type RouteHandler = (ctx: RouteContext) => Awaitable<unknown>;
export type ActionHandler = (ctx: ActionContext<any>) => Awaitable<unknown>;
export type EventHandler = (ctx: EventContext<any>) => Awaitable<void>;

export interface PluginDefinition {
  /** Unique service name: lower-case letters, digits and '-'. Routes live under /api/<name>. */
  name: string;
  /** Semantic version of the plugin. */
  version: string;
  description?: string;
  /** Circuit breaker settings for calls to this service; platform.config.ts `breaker.services` wins. */
  breaker?: BreakerOverride;
  /** Services this one calls; shown in /health and used to report missing dependencies. */
  needs?: string[];
  /** SQL run in order, once each, against the service's own database. Append only. */
  migrations?: string[];
  /** HTTP routes: `"METHOD /path"` (path relative to /api/<name>, `:param` segments) → handler. */
  routes?: Record<string, RouteSpec<any, any, any> | RouteHandler>;
  /** Actions other services (and the gateway) call as `"<name>.<action>"`. */
  actions?: Record<string, ActionSpec<any> | ActionHandler>;
  /** MQTT topic filters (e.g. `events/orders/#`) → handler receiving the CloudEvent. */
  subscribe?: Record<string, EventSpec | EventHandler>;
}

export function definePlugin<const P extends PluginDefinition>(plugin: P): P {
  return plugin;
}

/** Declares a route with typed body, query and params from its schemas. */
export function route<B extends TSchema = TSchema, Q extends TSchema = TSchema, P extends TSchema = TSchema>(
  spec: RouteSpec<B, Q, P>,
): RouteSpec<B, Q, P> {
  return spec;
}

/** Declares an action with typed params from its schema. */
export function action<P extends TSchema = TSchema>(spec: ActionSpec<P>): ActionSpec<P> {
  return spec;
}
