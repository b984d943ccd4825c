/**
 * `/api/<service>/<path>`: match the plugin's route, then apply its policies in
 * order (who may call → rate limit → cache), read the body, hand the request to
 * the service through its breaker, and turn the reply into HTTP. Credentials, and whether the
 * service can take the request now (its bulkhead and breaker), are checked before the body is
 * read, so an unauthorized upload or one the service would shed costs nothing.
 */
import type { Config } from "../../config/schema";
import type { Authenticator } from "../auth/authenticator";
import type { Identity } from "../auth/identity";
import { authorize } from "../auth/policy";
import { PlinthError } from "../errors";
import { routeName, type DeclaredRoute } from "../protocol";
import { readBody } from "./body";
import type { ResponseCache } from "./cache";
import { errorResponse } from "./errors";
import { cachedResponse, checkHeaders, decode, forwardedHeaders } from "./http";
import type { RateLimiter } from "./ratelimit";
import type { Upstream, UpstreamMatch } from "./upstream";

export const API_PREFIX = "/api/";

export interface ApiPolicies {
  auth: Authenticator;
  limiter: RateLimiter;
  cache: ResponseCache;
  /** The client's address, for anonymous rate limiting. */
  clientIp(request: Request): string;
}

/** What one request carries from step to step. */
interface Pending {
  request: Request;
  /** GET for a HEAD request: HEAD is served by the GET route, without the body. */
  method: string;
  /** Path and query string: what the cache keys on (the Host header does not choose anything here). */
  target: string;
  search: string;
  service: string;
  subpath: string;
  match: UpstreamMatch;
  route: DeclaredRoute;
  deadline: number;
  /** Its caller was verified asynchronously: the route may have changed hands meanwhile. */
  waited: boolean;
}

export function apiHandler(loader: Upstream, config: Readonly<Config>, policies: ApiPolicies) {
  const { gateway } = config;
  const { auth, limiter, cache } = policies;
  const bodyLimits = { maxBytes: gateway.maxBodyBytes, maxJsonDepth: gateway.maxJsonDepth };
  const policyOf = (route: DeclaredRoute) => route.auth ?? config.auth.defaultPolicy;
  /** Routes whose `invalidatedBy` filters this cache already knows. */
  const watched = new WeakSet<DeclaredRoute>();
  /** Per cached route, the request headers its handler's last answer named in `Vary` (lower case, sorted). */
  const varyBy = new Map<string, string[]>();

  /**
   * `method` is not a route of `path`, but other methods are: 405 with `Allow` naming them (HEAD with
   * GET). Only on the way to a 404, so the loader is asked once per method its service declares.
   */
  function methodNotAllowed(err: unknown, service: string, method: string, path: string, asked: string): PlinthError | undefined {
    if (!(err instanceof PlinthError) || err.code !== "PLT_NOT_FOUND") return undefined;
    const routes = loader.services.get(service)?.host.manifest?.routes ?? [];
    const allow: string[] = [];
    for (const m of new Set(routes.map((r) => r.method))) {
      if (m === method) continue;
      try {
        loader.match(service, m, path);
        allow.push(m);
        if (m === "GET") allow.push("HEAD");
      } catch {
        // not this one either
      }
    }
    if (allow.length === 0) return undefined;
    return new PlinthError("PLT_METHOD_NOT_ALLOWED", `${asked} is not allowed on /api/${service}${path === "/" ? "" : path}: ${allow.join(", ")}`, { data: { allow } });
  }

  /**
   * `path` and `search` (the query string without "?") are split from the request's URL once by the caller.
   * Synchronous up to the cache: a cache hit with a known caller never waits.
   */
  return (request: Request, path: string, search: string): Response | Promise<Response> => {
    const deadline = Date.now() + gateway.requestTimeoutMs;
    const rest = path.slice(API_PREFIX.length);
    const slash = rest.indexOf("/");
    const service = decode(slash < 0 ? rest : rest.slice(0, slash));
    const subpath = slash < 0 ? "/" : rest.slice(slash);
    const method = request.method === "HEAD" ? "GET" : request.method;
    let match: UpstreamMatch;
    try {
      match = loader.match(service, method, subpath);
    } catch (err) {
      throw methodNotAllowed(err, service, method, subpath, request.method) ?? err;
    }
    const target = search ? `${path}?${search}` : path;
    const p: Pending = { request, method, target, search, service, subpath, match, route: declared(match), deadline, waited: false };

    // The caller, or null; invalid credentials fail unless the route is public (where they are ignored).
    let identity: Identity | Promise<Identity> | null;
    try {
      identity = auth.fromHeaders(request.headers);
    } catch (err) {
      if (policyOf(p.route) !== "public") throw err;
      identity = null;
    }
    if (!(identity instanceof Promise)) return admit(p, identity);
    p.waited = true;
    return identity.then(
      (id) => admit(p, id),
      (err: unknown) => {
        if (policyOf(p.route) !== "public") throw err;
        return admit(p, null);
      },
    );
  };

  /** Route policy, rate limit, then the cache; what passes is forwarded to the service. */
  function admit(p: Pending, identity: Identity | null): Response | Promise<Response> {
    const { request, route } = p;
    authorize(policyOf(route), identity);
    const name = nameOf(p.match.service.name, route);

    const limit = gateway.rateLimits[name] ?? route.rateLimit ?? gateway.rateLimit;
    let rateHeaders: Record<string, string> | undefined;
    if (limit.limit > 0) {
      const who = identity ? `${identity.via}:${identity.sub}` : `ip:${policies.clientIp(request)}`;
      const taken = limiter.take(`${who} ${name}`, limit.limit, limit.windowMs);
      if (!taken.allowed) {
        return errorResponse(new PlinthError("PLT_RATE_LIMITED", `rate limit of ${limit.limit} requests per ${limit.windowMs} ms reached for ${name}`), taken.headers);
      }
      rateHeaders = taken.headers;
    }

    // Answers of public routes are shared (their handlers do not see the caller); others are kept per
    // caller and roles. The service's id in the key retires a replaced version's answers.
    const shared = policyOf(route) === "public";
    const baseKey =
      route.cache
        ? `${serviceId(p.match.service)} ${name}\n${shared || !identity ? "" : `${identity.via}:${identity.sub}:${identity.roles.join(",")}`}\n${p.target}`
        : null;
    // A handler that answered with `Vary` keeps one answer per value of the headers it named.
    const cacheKey = baseKey === null ? null : withVary(baseKey, request.headers, varyBy.get(name));
    if (cacheKey) {
      const hit = cache.get(cacheKey);
      if (hit) return cachedResponse(request, hit, rateHeaders, "HIT");
    }
    // A service that cannot take the request now refuses it before its body is read or anything is
    // built for it (a route with a fallback answers with that instead, in forward).
    const refused = gateway.fallbacks[name] ? null : loader.breakers.admits(p.match.service.name);
    if (refused) return errorResponse(refused, rateHeaders);
    const forwarded = forward(p, cacheKey && shared ? null : identity, name, rateHeaders, baseKey);
    if (!rateHeaders) return forwarded;
    // Errors of a limited route carry its RateLimit-* headers too.
    return forwarded.catch((err: unknown) => (err instanceof PlinthError ? errorResponse(err, rateHeaders) : Promise.reject(err)));
  }

  /** `baseKey`: the cache key of a cached route, without the part of the headers its answer names in `Vary`. */
  async function forward(p: Pending, identity: Identity | null, name: string, rateHeaders: Record<string, string> | undefined, baseKey: string | null): Promise<Response> {
    const { request, deadline } = p;
    const reading = readBody(request, bodyLimits, deadline, p.route.schemas?.body !== undefined);
    const body = reading === undefined ? undefined : await reading;
    let { match, route } = p;
    if (reading !== undefined || p.waited) {
      // The route again: the service that answers is the one serving when the request is complete,
      // so a plugin replaced meanwhile is never handed a request after it was drained.
      const again = loader.match(p.service, p.method, p.subpath);
      if (again.service !== match.service) {
        match = again;
        route = declared(match);
        authorize(policyOf(route), identity);
      }
    }
    const params = match.params;
    for (const k in params) params[k] = decode(params[k]!);

    const headers = forwardedHeaders(request.headers);
    // An event committed while this request runs must not be undone by storing what it read before.
    if (baseKey && route.cache && !watched.has(route)) {
      watched.add(route);
      cache.watch(name, route.cache.invalidatedBy);
    }
    const generation = baseKey ? cache.generation(name) : 0;
    let fromFallback = false;
    const reply = await loader.http(match, { search: p.search, headers, body, deadline, identity }, Math.max(1, deadline - Date.now())).catch((err: unknown) => {
      const fallback = gateway.fallbacks[name];
      const error = PlinthError.from(err);
      if (!fallback || error.status < 500) throw err;
      fromFallback = true;
      const headers = { "content-type": "application/json;charset=utf-8", ...fallback.headers, "x-plinth-fallback": error.code };
      return { status: fallback.status, body: JSON.stringify(fallback.body), headers };
    });
    const vary = baseKey && route.cache && reply.status === 200 && !fromFallback ? varyOf(reply.headers) : null;
    if (baseKey && route.cache && vary && cache.generation(name) === generation) {
      checkHeaders(match, reply); // before they are stored and replayed
      const known = varyBy.get(name);
      if (vary.length === 0 ? known !== undefined : known?.join() !== vary.join()) {
        if (vary.length === 0) varyBy.delete(name);
        else varyBy.set(name, vary);
      }
      const visibility = policyOf(route) === "public" ? "public" : "private";
      // A cookie belongs to the caller it was set for: never stored, never replayed.
      const kept: Record<string, string> = { ...reply.headers };
      delete kept["set-cookie"];
      const headers = { ...kept, "content-type": "application/json", "cache-control": `${visibility}, max-age=${Math.floor(route.cache.ttlMs / 1000)}` };
      const stored = cache.set(withVary(baseKey, request.headers, varyBy.get(name)), name, route.cache.ttlMs, { status: 200, headers, body: reply.body ?? "null" });
      return cachedResponse(request, stored, rateHeaders, "MISS");
    }
    // reply.headers is this request's own copy (it crossed threads): add to it in place.
    const answerHeaders = rateHeaders ? Object.assign(reply.headers, rateHeaders) : reply.headers;
    // A HEAD answer keeps its body: Bun sends its Content-Length and leaves the bytes out.
    const empty = reply.status === 204 || reply.status === 304;
    try {
      return new Response(empty ? null : reply.body, { status: reply.status, headers: answerHeaders });
    } catch {
      // Bun refuses a malformed header (a CR/LF in a value, say): name it, else the status was invalid.
      checkHeaders(match, reply);
      throw new PlinthError("PLT_HANDLER_ERROR", `${match.service.name}: invalid response`);
    }
  }
}

/** The header names an answer's `Vary` lists (lower case, sorted; none: []), or null for `Vary: *` (not to be stored). */
function varyOf(headers: Record<string, string>): string[] | null {
  for (const key in headers) {
    if (key.length !== 4 || key.toLowerCase() !== "vary") continue;
    const names = headers[key]!.split(",").map((h) => h.trim().toLowerCase()).filter((h) => h.length > 0);
    if (names.includes("*")) return null;
    return [...new Set(names)].sort();
  }
  return [];
}

/** The cache key with the values of the request headers `names` (each on a line of its own, absent ones empty). */
function withVary(key: string, headers: Headers, names: string[] | undefined): string {
  if (names === undefined) return key;
  let suffix = "";
  for (const name of names) suffix += `\n${name}:${JSON.stringify(headers.get(name))}`;
  return key + suffix;
}

/** A number per loaded service instance: a replaced plugin's cached answers are never served. */
const serviceIds = new WeakMap<object, number>();
let nextServiceId = 0;
function serviceId(service: object): number {
  let id = serviceIds.get(service);
  if (id === undefined) serviceIds.set(service, (id = ++nextServiceId));
  return id;
}

/** "GET /api/orders/:id" for a declared route, built once per route object. */
const names = new WeakMap<DeclaredRoute, string>();
function nameOf(service: string, route: DeclaredRoute): string {
  let name = names.get(route);
  if (name === undefined) names.set(route, (name = routeName(service, route)));
  return name;
}

function declared(match: UpstreamMatch): DeclaredRoute {
  return match.service.host.manifest!.routes[match.route]!;
}
