/**
 * The HTTP entry point: /api/* straight to the API handler, Elysia for the rest
 * (/health, /openapi.json, /docs, 404s, and everything when CORS is on), every
 * error turned into `{ error: { code, message } }` and its catalog status. MQTT over
 * WebSocket is served on the same port at `broker.websocketPath`.
 */
import { cors } from "@elysiajs/cors";
import { Elysia } from "elysia";
import type { Server, WebSocketHandler } from "bun";
import type { Config } from "../../config/schema";
import { listenFailed } from "../broker/broker";
import { upgradeMqtt } from "../broker/ws";
import type { BrokerSocketData } from "../bus/embedded";
import { PlinthError } from "../errors";
import type { Logger } from "../log";
import { Topics } from "../protocol";
import { errorResponse } from "./errors";
import { answerHook, brokerHook } from "./broker-hook";
import { brokerStore, healthReport } from "./health";
import { docsPage, openApiDocument } from "./openapi";
import { API_PREFIX, apiHandler, type ApiPolicies } from "./routes";
import type { Upstream } from "./upstream";


export interface Gateway {
  readonly app: GatewayApp;
  readonly url: string;
  readonly port: number;
  /** The client address of a request this gateway is serving. */
  clientIp(request: Request): string;
  /** Stops accepting connections and waits (up to graceMs) for in-flight requests. */
  stop(graceMs: number): Promise<void>;
}

/**
 * The gateway's request handler: `/api/*` straight to the API handler (the hot path, without
 * Elysia's per-request work), everything else (and all of it when CORS is on, so that the CORS
 * plugin sees every request) through the Elysia app.
 */
export interface GatewayApp {
  fetch(request: Request): Response | Promise<Response>;
}

export function createApp(loader: Upstream, config: Readonly<Config>, log: Logger, policies: ApiPolicies): GatewayApp {
  const startedAt = Date.now();
  const broker = brokerStore(config);
  const api = apiHandler(loader, config, policies);
  // Committed events clear the cached answers of the routes that name them, before the
  // request that committed them is answered.
  loader.onCommit((service, events) => {
    if (!policies.cache.watching) return;
    for (const e of events) policies.cache.invalidate(Topics.event(service, e.type));
  });
  const hook = config.auth.mqtt.brokerHook ? brokerHook(policies.auth, config.auth.mqtt) : null;
  const { cors: corsConfig } = config.gateway;
  const throughElysia = corsConfig.origins.length > 0;
  const toResponse = (error: unknown, request: Request): Response => {
    if (error instanceof PlinthError) return errorResponse(error);
    return internalError(log, error, `${request.method} ${splitUrl(request.url)[0]}`);
  };
  // Elysia by default looks for the path from the 11th character of the URL on ("http://a.bc"), so
  // with a Host of 1-3 characters it found no route; the URL is always http:// here.
  const app = new Elysia({ handler: { standardHostname: false } })
    .use(
      throughElysia
        ? cors({
            origin: corsConfig.origins.includes("*") ? true : corsConfig.origins,
            credentials: corsConfig.credentials && !corsConfig.origins.includes("*"),
            maxAge: corsConfig.maxAgeSeconds,
            allowedHeaders: ["authorization", "content-type", "x-api-key", "if-none-match"],
            exposeHeaders: ["etag", "retry-after", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "www-authenticate"],
          })
        : new Elysia(),
    )
    .onError(({ code, error, request }) => {
      if (code === "NOT_FOUND") return errorResponse(new PlinthError("PLT_NOT_FOUND", `no route ${request.method} ${splitUrl(request.url)[0]}`));
      if (code === "PARSE") return errorResponse(new PlinthError("PLT_BAD_JSON", "malformed request body"));
      return toResponse(error, request);
    })
    .get("/health", () => healthReport(loader, broker, startedAt))
    .get("/openapi.json", () => (config.gateway.openapi ? openApiDocument(loader, config) : notFound("/openapi.json")))
    .get("/docs", () => (config.gateway.openapi ? docsPage("/openapi.json") : notFound("/docs")))
    .post("/broker/:check", ({ request, params }) => (hook ? answerHook(hook, params.check, request, config) : notFound(`/broker/${params.check}`)), { parse: "none" })
    .all(
      `${API_PREFIX}*`,
      ({ request }) => {
        const [path, search] = splitUrl(request.url);
        return api(request, path, search);
      },
      { parse: "none" },
    );

  return {
    fetch(request) {
      const url = request.url;
      // Bun gives a request whose Host cannot make a URL its bare path instead; CONNECT its authority.
      if (url.charCodeAt(0) !== 104 /* "h" of http: */ || request.method === "CONNECT") return badTarget(request);
      if (throughElysia) return elysia(request);
      const [path, search] = splitUrl(url);
      if (!path.startsWith(API_PREFIX)) return elysia(request);
      try {
        const answer = api(request, path, search);
        return answer instanceof Promise ? answer.catch((err: unknown) => toResponse(err, request)) : answer;
      } catch (err) {
        return toResponse(err, request);
      }
    },
  };

  /** Elysia's handler, which builds URL objects: a request whose URL does not parse is answered first. */
  function elysia(request: Request): Response | Promise<Response> {
    if (!URL.canParse(request.url)) return badTarget(request);
    return app.fetch(request);
  }
}

/** A request whose target or Host cannot make a URL (an empty Host, one with "/", "?", "#", "@", a space or non-ASCII bytes), or a CONNECT. */
function badTarget(request: Request): Response {
  if (request.method === "CONNECT") return errorResponse(new PlinthError("PLT_BAD_REQUEST", "CONNECT is not served: this is not a proxy"));
  const host = request.headers.get("host");
  if (!host) return errorResponse(new PlinthError("PLT_BAD_REQUEST", "missing or empty Host header"));
  return errorResponse(new PlinthError("PLT_BAD_REQUEST", `invalid Host header ${quoted(host)}: it must be a host name or address, with an optional port`));
}

/** A client's string in a message: at most 100 characters, anything but printable ASCII escaped. */
function quoted(text: string): string {
  const cut = text.length > 100 ? `${text.slice(0, 100)}…` : text;
  return JSON.stringify(cut).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** A fault that is not a PlinthError: logged whole, answered with the code only (no stack, source or path to the client). */
function internalError(log: Logger, error: unknown, request?: string): Response {
  log.error("gateway error", { ...(request ? { request } : {}), error: error instanceof Error ? (error.stack ?? error.message) : String(error) });
  return errorResponse(new PlinthError("PLT_INTERNAL", "internal error"));
}

/** The path and the query string (without "?") of an absolute request URL, without building a URL object. */
function splitUrl(url: string): [path: string, search: string] {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  const q = url.indexOf("?", start);
  return q < 0 ? [url.slice(start), ""] : [url.slice(start, q), url.slice(q + 1)];
}

function notFound(path: string): Response {
  return errorResponse(new PlinthError("PLT_NOT_FOUND", `no route GET ${path}`));
}

function serve(options: Bun.Serve.Options<BrokerSocketData>, at: Config["gateway"]): Server<BrokerSocketData> {
  try {
    return Bun.serve<BrokerSocketData>(options);
  } catch (err) {
    throw listenFailed("gateway.port", at.host, at.port, err);
  }
}

/** Bun's idle timeout is whole seconds, at most this. */
const MAX_IDLE_TIMEOUT_S = 255;

/**
 * Bun's idle timeout for the gateway's connections: past every request's own deadline (504, 408),
 * so that Bun never closes a connection whose request the gateway still means to answer. 0: longer
 * than Bun allows, so each request turns it off for its connection (the deadlines still hold).
 */
export function idleTimeoutSeconds(requestTimeoutMs: number): number {
  const seconds = Math.ceil(requestTimeoutMs / 1000) + 5;
  return seconds > MAX_IDLE_TIMEOUT_S ? 0 : Math.max(10, seconds);
}

/** `websocket`: the embedded broker's handler for MQTT over WebSocket on `broker.websocketPath` (when it has no port of its own); null: none. */
export function startGateway(app: GatewayApp, websocket: WebSocketHandler<BrokerSocketData> | null, config: Readonly<Config>, log: Logger): Gateway {
  // With a port of its own (the broker's listener), or no embedded broker (a cluster), MQTT over WebSocket is not served here.
  const wsPath = websocket && config.broker.websocketPort === undefined ? config.broker.websocketPath : "";
  const idleTimeout = idleTimeoutSeconds(config.gateway.requestTimeoutMs);
  const server: Server<BrokerSocketData> = serve({
    hostname: config.gateway.host,
    port: config.gateway.port,
    // Bodies are limited (with a JSON 413) by readBody; this is only the hard ceiling.
    maxRequestBodySize: Math.max(config.gateway.maxBodyBytes * 4, 16 * 1024 * 1024),
    // Never Bun's error page (it shows source lines and paths): every error is the JSON error body.
    development: false,
    error: (error) => internalError(log, error),
    idleTimeout: idleTimeout === 0 ? MAX_IDLE_TIMEOUT_S : idleTimeout,
    fetch(request, srv) {
      if (idleTimeout === 0) srv.timeout(request, 0);
      if (wsPath && request.headers.get("upgrade")?.toLowerCase() === "websocket" && splitUrl(request.url)[0] === wsPath) {
        if (upgradeMqtt(request, srv)) return undefined;
        return errorResponse(new PlinthError("PLT_BAD_REQUEST", "WebSocket upgrade failed"));
      }
      return app.fetch(request);
    },
    // Bun's types ask for a handler; with no path to upgrade on, it is never called.
    websocket: websocket ?? { message() {} },
  }, config.gateway);
  const url = `http://${config.gateway.host}:${server.port}`;
  // The broker's store has no logger of its own: its transitions (as /health shows them) are logged here.
  const unlisten = brokerStore(config)?.listen((fault, previous) => {
    if (fault) log.error("storage failing", { service: "broker", reason: fault.reason, code: fault.cause, error: fault.detail });
    else log.info("storage recovered", { service: "broker", reason: previous?.reason, since: previous?.since });
  });
  log.info("gateway listening", { url, ...(wsPath ? { mqttWebSocket: `ws://${config.gateway.host}:${server.port}${wsPath}` } : {}) });

  return {
    app,
    url,
    port: server.port ?? config.gateway.port,
    clientIp: (request) => server.requestIP(request)?.address ?? "unknown",
    async stop(graceMs) {
      unlisten?.();
      const drained = server.stop(false);
      const timedOut = await Promise.race([drained.then(() => false), Bun.sleep(graceMs).then(() => true)]);
      if (timedOut) await server.stop(true);
    },
  };
}
