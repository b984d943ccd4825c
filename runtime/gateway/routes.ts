/**
 * `/api/<service>/<path>`: match the plugin's route, read the body, hand the
 * request to the service through its breaker, and turn the reply into HTTP.
 * A route with a configured fallback answers with it when the service fails.
 */
import type { Config } from "../../config/schema";
import { PlinthError } from "../errors";
import { routeName } from "../protocol";
import type { Loader, RouteMatch } from "../loader/loader";
import { readBody } from "./body";

export const API_PREFIX = "/api/";

export function apiHandler(loader: Loader, config: Config["gateway"]) {
  return async (request: Request, path: string, query: Record<string, string | undefined>): Promise<Response> => {
    const rest = path.slice(API_PREFIX.length);
    const slash = rest.indexOf("/");
    const service = slash < 0 ? rest : rest.slice(0, slash);
    const subpath = slash < 0 ? "/" : rest.slice(slash);
    // Body first, route second: the service that answers is the one serving when the request is
    // complete, so a plugin replaced meanwhile is never handed a request after it was drained.
    const body = request.body ? await readBody(request, config.maxBodyBytes) : undefined;
    const match = loader.match(decodeURIComponent(service), request.method, subpath);
    for (const [k, v] of Object.entries(match.params)) match.params[k] = decodeURIComponent(v);
    const req = { query: query as Record<string, string>, headers: request.headers.toJSON(), body, deadline: Date.now() + config.requestTimeoutMs };
    const reply = await loader.http(match, req, config.requestTimeoutMs).catch((err: unknown) => {
      const fallback = config.fallbacks[routeKey(request.method, match)];
      const error = PlinthError.from(err);
      if (!fallback || error.status < 500) throw err;
      return { ...fallback, headers: { ...fallback.headers, "x-plinth-fallback": error.code } };
    });
    if (reply.status === 204 || reply.status === 304 || request.method === "HEAD") {
      return new Response(null, { status: reply.status, headers: reply.headers });
    }
    return Response.json(reply.body, { status: reply.status, headers: reply.headers });
  };
}

/** The route as declared, e.g. "GET /api/orders/:id": the key of `gateway.fallbacks`. */
function routeKey(method: string, match: RouteMatch): string {
  return routeName(match.service.name, { method, path: match.service.host.manifest?.routes[match.route]?.path ?? "/" });
}
