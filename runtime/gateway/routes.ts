/**
 * `/api/<service>/<path>`: match the plugin's route, then apply its policies in
 * order (who may call → rate limit → cache), read the body, hand the request to
 * the service through its breaker, and turn the reply into HTTP. Credentials are
 * checked before the body is read, so an unauthorized upload costs nothing.
 */
import type { Config } from "../../config/schema";
import type { Authenticator } from "../auth/authenticator";
import type { Identity } from "../auth/identity";
import { authorize } from "../auth/policy";
import { PlinthError } from "../errors";
import { routeName, type DeclaredRoute } from "../protocol";
import type { Loader, RouteMatch } from "../loader/loader";
import type { HttpResponse } from "../worker/channel";
import { readBody } from "./body";
import type { ResponseCache } from "./cache";
import { errorResponse } from "./errors";
import type { RateLimiter } from "./ratelimit";

export const API_PREFIX = "/api/";

export interface ApiPolicies {
  auth: Authenticator;
  limiter: RateLimiter;
  cache: ResponseCache;
  /** The client's address, for anonymous rate limiting. */
  clientIp(request: Request): string;
}

export function apiHandler(loader: Loader, config: Readonly<Config>, policies: ApiPolicies) {
  const { gateway } = config;
  const { auth, limiter, cache } = policies;

  /** `search`: the query string, without "?". */
  return async (request: Request, path: string, search: string): Promise<Response> => {
    const deadline = Date.now() + gateway.requestTimeoutMs;
    const rest = path.slice(API_PREFIX.length);
    const slash = rest.indexOf("/");
    const service = decode(slash < 0 ? rest : rest.slice(0, slash));
    const subpath = slash < 0 ? "/" : rest.slice(slash);
    const method = request.method;

    let match = loader.match(service, method, subpath);
    let route = declared(match);
    const identity = await identify(request, route);
    authorize(route.auth ?? config.auth.defaultPolicy, identity);
    const name = routeName(match.service.name, route);

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

    const cacheKey = route.cache && method === "GET" ? `${name}\n${route.auth === "public" ? "" : `${identity?.via}:${identity?.sub}`}\n${request.url}` : null;
    if (cacheKey) {
      const hit = cache.get(cacheKey);
      if (hit) return cachedResponse(request, hit, route, rateHeaders, "HIT");
    }

    // Body, then the route again: the service that answers is the one serving when the request is
    // complete, so a plugin replaced meanwhile is never handed a request after it was drained.
    const body = request.body ? await withinDeadline(readBody(request, gateway.maxBodyBytes), deadline) : undefined;
    const again = loader.match(service, method, subpath);
    if (again.service !== match.service) {
      match = again;
      route = declared(match);
      authorize(route.auth ?? config.auth.defaultPolicy, identity);
    }
    for (const [k, v] of Object.entries(match.params)) match.params[k] = decode(v);

    const query = search ? Object.fromEntries(new URLSearchParams(search)) : {};
    const req = { query, headers: request.headers.toJSON(), body, deadline, identity };
    const reply = await loader.http(match, req, Math.max(1, deadline - Date.now())).catch((err: unknown) => {
      const fallback = gateway.fallbacks[name];
      const error = PlinthError.from(err);
      if (!fallback || error.status < 500) throw err;
      return { ...fallback, headers: { ...fallback.headers, "x-plinth-fallback": error.code } };
    });
    checkHeaders(match, reply);
    if (cacheKey && reply.status === 200) {
      cache.watch(name, route.cache!.invalidatedBy);
      const stored = cache.set(cacheKey, name, route.cache!.ttlMs, { status: 200, headers: reply.headers, body: JSON.stringify(reply.body) });
      return cachedResponse(request, stored, route, rateHeaders, "MISS");
    }
    const headers = rateHeaders ? { ...reply.headers, ...rateHeaders } : reply.headers;
    if (reply.status === 204 || reply.status === 304 || method === "HEAD") return new Response(null, { status: reply.status, headers });
    return Response.json(reply.body, { status: reply.status, headers });
  };

  /** The caller, or null; invalid credentials fail unless the route is public (where they are ignored). */
  async function identify(request: Request, route: DeclaredRoute): Promise<Identity | null> {
    try {
      return await auth.fromHeaders(request.headers);
    } catch (err) {
      if ((route.auth ?? config.auth.defaultPolicy) === "public") return null;
      throw err;
    }
  }
}

function declared(match: RouteMatch): DeclaredRoute {
  return match.service.host.manifest!.routes[match.route]!;
}

function cachedResponse(request: Request, hit: { status: number; headers: Record<string, string>; body: string; etag: string }, route: DeclaredRoute, rateHeaders: Record<string, string> | undefined, state: string): Response {
  const headers: Record<string, string> = {
    ...hit.headers,
    ...rateHeaders,
    etag: hit.etag,
    "cache-control": `${route.auth === "public" ? "public" : "private"}, max-age=${Math.floor(route.cache!.ttlMs / 1000)}`,
    "x-cache": state,
  };
  const conditional = request.headers.get("if-none-match");
  if (conditional !== null && conditional.split(",").some((tag) => tag.trim().replace(/^W\//, "") === hit.etag || tag.trim() === "*")) {
    return new Response(null, { status: 304, headers });
  }
  headers["content-type"] = "application/json";
  return new Response(hit.body, { status: hit.status, headers });
}

function decode(segment: string): string {
  if (!segment.includes("%")) return segment;
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new PlinthError("PLT_BAD_REQUEST", `malformed percent-encoding in path segment "${segment}"`);
  }
}

/** A body that has not fully arrived by the request's deadline (a slow client) is refused. */
function withinDeadline<T>(reading: Promise<T>, deadline: number): Promise<T> {
  let timer: Timer | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new PlinthError("PLT_REQUEST_TIMEOUT", "request body not received in time")), Math.max(0, deadline - Date.now()));
  });
  return Promise.race([reading, timeout]).finally(() => clearTimeout(timer));
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** A handler's response headers must be well-formed: a CR/LF in a value would let a caller inject headers. */
function checkHeaders(match: RouteMatch, reply: HttpResponse): void {
  for (const [name, value] of Object.entries(reply.headers)) {
    if (!HEADER_NAME.test(name) || typeof value !== "string" || !HEADER_VALUE.test(value)) {
      throw new PlinthError("PLT_HANDLER_ERROR", `${match.service.name}: invalid response header ${JSON.stringify(name)}`);
    }
  }
}
