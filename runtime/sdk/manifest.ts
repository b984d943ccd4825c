/**
 * Validates a plugin's default export inside its worker and reduces it to the
 * plain Manifest the host needs. Every problem is named in one error.
 */
import { Type as t, type TSchema } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { BreakerOverride, Policy, rateLimit } from "../../config/fields";
import { PlinthError } from "../errors";
import { SERVICE_NAME, isValidTopicFilter, type DeclaredRoute, type Manifest, type RouteInfo, type RoutePolicy } from "../protocol";
import type { PluginDefinition } from "./define";

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] as const;
const ROUTE_KEY = /^([A-Z]+) (\/[A-Za-z0-9_.~:/-]*)$/;
const ACTION_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;
const SEMVER = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;

export function parseRouteKey(key: string): RouteInfo | null {
  const m = ROUTE_KEY.exec(key);
  if (!m || !(METHODS as readonly string[]).includes(m[1]!)) return null;
  const path = m[2]!.replace(/\/+$/, "") || "/";
  if (path.includes("//")) return null;
  return { method: m[1]!, path };
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const handlerOf = (v: unknown) => (typeof v === "function" ? v : (v as { handler?: unknown } | null)?.handler);

export function validatePlugin(value: unknown): { plugin: PluginDefinition; manifest: Manifest } {
  const problems: string[] = [];
  const p = value as Partial<PluginDefinition> | null;
  if (typeof p !== "object" || p === null) {
    throw new PlinthError("PLT_PLUGIN_INVALID", "default export must be definePlugin({ name, version, ... })");
  }
  if (typeof p.name !== "string" || !SERVICE_NAME.test(p.name)) {
    problems.push(`name: expected lower-case letters, digits and '-' starting with a letter, got ${JSON.stringify(p.name)}`);
  }
  if (typeof p.version !== "string" || !SEMVER.test(p.version)) {
    problems.push(`version: expected a semantic version like "1.0.0", got ${JSON.stringify(p.version)}`);
  }
  if (p.migrations !== undefined && (!Array.isArray(p.migrations) || p.migrations.some((m) => typeof m !== "string"))) {
    problems.push("migrations: expected an array of SQL strings");
  }
  if (p.needs !== undefined && (!Array.isArray(p.needs) || p.needs.some((n) => typeof n !== "string" || !SERVICE_NAME.test(n)))) {
    problems.push("needs: expected an array of service names");
  }
  if (p.description !== undefined && typeof p.description !== "string") problems.push("description: expected a string");
  for (const key of ["routes", "actions", "subscribe"] as const) {
    if (p[key] !== undefined && !isRecord(p[key])) problems.push(`${key}: expected an object`);
  }
  const entries = (v: unknown) => (isRecord(v) ? Object.entries(v) : []);
  const routes: DeclaredRoute[] = [];
  const seen = new Set<string>();
  for (const [key, spec] of entries(p.routes)) {
    const info = parseRouteKey(key);
    if (!info) problems.push(`routes["${key}"]: expected "METHOD /path" with METHOD one of ${METHODS.join(", ")}`);
    else if (seen.has(`${info.method} ${info.path}`)) problems.push(`routes["${key}"]: duplicates ${info.method} ${info.path}`);
    else {
      seen.add(`${info.method} ${info.path}`);
      routes.push({ ...info, ...routePolicy(`routes["${key}"]`, info, spec, problems) });
    }
    if (typeof handlerOf(spec) !== "function") problems.push(`routes["${key}"]: expected a handler function`);
  }
  if (p.breaker !== undefined) check(problems, "breaker", BreakerOverride, p.breaker);
  const actionBreakers: Record<string, Record<string, number>> = {};
  const idempotent: string[] = [];
  for (const [key, spec] of entries(p.actions)) {
    if (!ACTION_NAME.test(key)) problems.push(`actions["${key}"]: invalid action name`);
    if (typeof handlerOf(spec) !== "function") problems.push(`actions["${key}"]: expected a handler function`);
    if (!isRecord(spec)) continue;
    if (spec.breaker !== undefined) {
      check(problems, `actions["${key}"].breaker`, BreakerOverride, spec.breaker);
      actionBreakers[key] = spec.breaker as Record<string, number>;
    }
    if (spec.idempotent === true) idempotent.push(key);
  }
  for (const [filter, spec] of entries(p.subscribe)) {
    if (!isValidTopicFilter(filter)) problems.push(`subscribe["${filter}"]: not a valid MQTT topic filter`);
    if (typeof handlerOf(spec) !== "function") problems.push(`subscribe["${filter}"]: expected a handler function`);
  }
  if (problems.length > 0) {
    throw new PlinthError("PLT_PLUGIN_INVALID", `invalid plugin definition: ${problems.join("; ")}`, { data: problems });
  }
  const plugin = p as PluginDefinition;
  return {
    plugin,
    manifest: {
      name: plugin.name,
      version: plugin.version,
      ...(plugin.description ? { description: plugin.description } : {}),
      routes,
      actions: Object.keys(plugin.actions ?? {}),
      idempotent,
      ...(plugin.breaker ? { breaker: plugin.breaker as Record<string, number> } : {}),
      actionBreakers,
      subscriptions: Object.keys(plugin.subscribe ?? {}),
      needs: plugin.needs ?? [],
    },
  };
}

/** The same shape as config's `gateway.rateLimits` entries (a default does not change what passes). */
const RateLimit = rateLimit();
const Cache = t.Object(
  { ttlMs: t.Integer({ minimum: 1 }), invalidatedBy: t.Optional(t.Array(t.String())) },
  { additionalProperties: false },
);

/** The gateway-facing part of a route spec (policy, cache, rate limit, schemas for the docs), checked. */
function routePolicy(where: string, info: RouteInfo, spec: unknown, problems: string[]): RoutePolicy {
  if (!isRecord(spec)) return {};
  const policy: RoutePolicy = {};
  if (spec.auth !== undefined && check(problems, `${where}.auth`, Policy(), spec.auth)) policy.auth = spec.auth as RoutePolicy["auth"];
  if (spec.rateLimit !== undefined && check(problems, `${where}.rateLimit`, RateLimit, spec.rateLimit)) policy.rateLimit = spec.rateLimit as RoutePolicy["rateLimit"];
  if (spec.cache !== undefined && check(problems, `${where}.cache`, Cache, spec.cache)) {
    const cache = spec.cache as { ttlMs: number; invalidatedBy?: string[] };
    const invalidatedBy = cache.invalidatedBy ?? [];
    if (info.method !== "GET") problems.push(`${where}.cache: only GET routes may be cached`);
    for (const f of invalidatedBy) if (!isValidTopicFilter(f)) problems.push(`${where}.cache.invalidatedBy: "${f}" is not a valid MQTT topic filter`);
    policy.cache = { ttlMs: cache.ttlMs, invalidatedBy };
  }
  if (typeof spec.summary === "string") policy.summary = spec.summary;
  const schemas: NonNullable<RoutePolicy["schemas"]> = {};
  for (const key of ["body", "query", "params"] as const) {
    // Plain JSON Schema, as the host will see it (TypeBox's symbol keys left out).
    if (isRecord(spec[key])) schemas[key] = JSON.parse(JSON.stringify(spec[key]));
  }
  if (Object.keys(schemas).length > 0) policy.schemas = schemas;
  return policy;
}

/** Whether `value` fits `schema`; if not, one problem per failing path, named from `where`. */
function check(problems: string[], where: string, schema: TSchema, value: unknown): boolean {
  let fits = true;
  for (const e of Value.Errors(schema, value)) {
    problems.push(`${where}${e.path.replaceAll("/", ".")}: ${e.message}`);
    fits = false;
  }
  return fits;
}
