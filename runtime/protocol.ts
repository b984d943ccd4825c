/**
 * Every MQTT topic and message envelope the platform uses, in one file.
 * Imported by the host and by workers: keep it free of dependencies (config types only).
 */
import type { Policy } from "../config/fields";

/** Service names: lower-case, start with a letter; used in topics, URLs and file names. */
export const SERVICE_NAME = /^[a-z][a-z0-9-]{0,62}$/;
/** Event types: one or more topic levels of safe characters (no wildcards, no empty, "." or ".." levels). */
const EVENT_LEVEL = /^[A-Za-z0-9_.-]{1,64}$/;

export function isValidEventType(type: unknown): type is string {
  if (typeof type !== "string" || type.length > 256) return false;
  return type.split("/").every((level) => EVENT_LEVEL.test(level) && level !== "." && level !== "..");
}

export const Topics = {
  /** Root of all service events; only services (never clients) publish under it. */
  eventsRoot: "events",
  /** The topic a service's event of `type` is published on: its own namespace. */
  event: (service: string, type: string) => `events/${service}/${type}`,
  /** Platform announcements (breaker transitions, service states); read-only for clients. */
  platformRoot: "$platform",
  breaker: (service: string) => `$platform/breakers/${service}`,
} as const;

export interface RouteInfo {
  method: string;
  path: string;
}

/**
 * Who is calling: the identity a token or an API key proves. Handlers see it as `ctx.identity`;
 * calls they make carry it on to the callee. It crosses threads, hence it lives here.
 */
export interface Identity {
  /** The token's subject, or the API key's name. */
  sub: string;
  roles: string[];
  /** How it was proven ("anonymous": not at all, an MQTT client let in by auth.mqtt.anonymous). */
  via: "jwt" | "key" | "anonymous";
}

/** What the gateway needs to know of a route besides where it is (all checked at load). */
export interface RoutePolicy {
  /** Who may call it; absent: `auth.defaultPolicy`. */
  auth?: Policy;
  /** GET only: keep answers this long; cleared at once by events on `invalidatedBy` topic filters. */
  cache?: { ttlMs: number; invalidatedBy: string[] };
  rateLimit?: { limit: number; windowMs: number };
  /** JSON Schemas of body, query and params, for the OpenAPI document. */
  schemas?: { body?: unknown; query?: unknown; params?: unknown };
  summary?: string;
}

export type DeclaredRoute = RouteInfo & RoutePolicy;

/** A route as the gateway serves it, e.g. "GET /api/orders/:id". */
export function routeName(service: string, route: RouteInfo): string {
  return `${route.method} /api/${service}${route.path === "/" ? "" : route.path}`;
}

/** What a worker reports about its plugin once loaded: plain data, no functions. */
export interface Manifest {
  name: string;
  version: string;
  description?: string;
  routes: DeclaredRoute[];
  actions: string[];
  /** Actions declared idempotent: safe to retry. */
  idempotent: string[];
  /** The plugin's own breaker settings for calls to it, and per action (checked at load). */
  breaker?: Record<string, number>;
  actionBreakers: Record<string, Record<string, number>>;
  subscriptions: string[];
  needs: string[];
}

/** An event a handler emitted, before the host gives it a topic and source. */
export interface EmitRequest {
  id: string;
  type: string;
  time: string;
  data: unknown;
}

/** An emitted event committed to the service's outbox; `seq` is its commit order. */
export interface CommittedEvent extends EmitRequest {
  seq: number;
}

/** A CloudEvents 1.0 JSON envelope (https://github.com/cloudevents/spec). */
export interface CloudEvent<T = unknown> {
  specversion: "1.0";
  id: string;
  source: string;
  type: string;
  time: string;
  datacontenttype: "application/json";
  subject?: string;
  /** CloudEvents `sequence` extension: the event's position in its source service's log. */
  sequence?: string;
  /** Extension: the generation of the source's log the event belongs to (changes when that log went back). */
  generation?: string;
  data: T;
}

/**
 * The CloudEvent for a service's committed event; topic and source come from the service name.
 * `sequence` orders a source's events; `generation` (given the source's current one) names the
 * run of its log they belong to: it changes when the log went back (storage/generation.ts).
 */
export function toEnvelope(service: string, e: CommittedEvent, generation?: { id: string; start: number } | null): CloudEvent {
  const envelope: CloudEvent = {
    specversion: "1.0",
    id: e.id,
    source: eventSource(service),
    type: eventType(service, e.type),
    time: e.time,
    datacontenttype: "application/json",
    sequence: String(e.seq),
    data: e.data,
  };
  if (generation && e.seq >= generation.start) envelope.generation = generation.id;
  return envelope;
}

export function eventType(service: string, type: string): string {
  return `${service}.${type.replaceAll("/", ".")}`;
}

const SOURCE_PREFIX = "plinth/";

export function eventSource(service: string): string {
  return `${SOURCE_PREFIX}${service}`;
}

/** The service an event's `source` names, or null when it did not come from a service. */
export function serviceOfSource(source: string | undefined): string | null {
  return source?.startsWith(SOURCE_PREFIX) ? source.slice(SOURCE_PREFIX.length) : null;
}

/**
 * Checks an MQTT topic filter.
 * [MQTT-4.7.1-2] '#' must be the last character and occupy a whole level;
 * [MQTT-4.7.1-3] '+' must occupy a whole level; [MQTT-4.7.3-1] non-empty.
 */
export function isValidTopicFilter(filter: string): boolean {
  if (filter.length === 0 || filter.length > 65535 || filter.includes("\u0000")) return false;
  const levels = filter.split("/");
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!;
    if (level.includes("#") && (level !== "#" || i !== levels.length - 1)) return false;
    if (level.includes("+") && level !== "+") return false;
  }
  return true;
}

/** Does an MQTT topic filter match a topic name ([MQTT-4.7.2-1]: '$' topics are not matched by leading wildcards). */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.startsWith("$") && (filter.startsWith("#") || filter.startsWith("+"))) return false;
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}
