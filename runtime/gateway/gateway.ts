/**
 * The HTTP entry point: Elysia for /health and /api/*, with every error turned
 * into `{ error: { code, message } }` and its catalog status. MQTT over
 * WebSocket is served on the same port at `broker.websocketPath`.
 */
import { Elysia } from "elysia";
import type { Server } from "bun";
import type { Config } from "../../config/schema";
import { listenFailed, type Broker } from "../broker/broker";
import { mqttWebSocketHandler, upgradeMqtt, type MqttSocketData } from "../broker/ws";
import { PlinthError } from "../errors";
import type { Loader } from "../loader/loader";
import type { Logger } from "../log";
import { VERSION } from "../version";
import { API_PREFIX, apiHandler } from "./routes";

export interface Gateway {
  readonly app: { handle(request: Request): Promise<Response> };
  readonly url: string;
  readonly port: number;
  /** Stops accepting connections and waits (up to graceMs) for in-flight requests. */
  stop(graceMs: number): Promise<void>;
}

export function errorResponse(error: PlinthError): Response {
  const body: { error: { code: string; message: string; data?: unknown } } = { error: { code: error.code, message: error.message } };
  if (error.data !== undefined) body.error.data = error.data;
  const headers: Record<string, string> = {};
  if (error.code === "PLT_BREAKER_OPEN") {
    const retryInMs = (error.data as { retryInMs?: number } | undefined)?.retryInMs;
    if (retryInMs !== undefined) headers["retry-after"] = String(Math.max(1, Math.ceil(retryInMs / 1000)));
  }
  return Response.json(body, { status: error.status, headers });
}

export function createApp(loader: Loader, config: Readonly<Config>, log: Logger) {
  const startedAt = Date.now();
  const api = apiHandler(loader, config.gateway);
  return new Elysia()
    .onError(({ code, error, request }) => {
      if (error instanceof PlinthError) return errorResponse(error);
      if (code === "NOT_FOUND") {
        return errorResponse(new PlinthError("PLT_NOT_FOUND", `no route ${request.method} ${new URL(request.url).pathname}`));
      }
      if (code === "PARSE") return errorResponse(new PlinthError("PLT_BAD_JSON", "malformed request body"));
      log.error("gateway error", { error: error instanceof Error ? (error.stack ?? error.message) : String(error) });
      return errorResponse(new PlinthError("PLT_INTERNAL", "internal error"));
    })
    .get("/health", () => {
      const { services, failed } = loader.describe();
      const degraded = failed.length > 0 || services.some((s) => s.state !== "ready");
      return {
        status: degraded ? "degraded" : "ok",
        version: VERSION,
        uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
        services: Object.fromEntries(services.map((s) => [s.name, { state: s.state, version: s.version, breaker: s.breaker }])),
        failed,
      };
    })
    .all(`${API_PREFIX}*`, ({ request, path, query }) => api(request, path, query), { parse: "none" });
}

function serve(options: Bun.Serve.Options<MqttSocketData>, at: Config["gateway"]): Server<MqttSocketData> {
  try {
    return Bun.serve<MqttSocketData>(options);
  } catch (err) {
    throw listenFailed("gateway.port", at.host, at.port, err);
  }
}

export function startGateway(app: ReturnType<typeof createApp>, broker: Broker, config: Readonly<Config>, log: Logger): Gateway {
  const wsPath = config.broker.websocketPath;
  const server: Server<MqttSocketData> = serve({
    hostname: config.gateway.host,
    port: config.gateway.port,
    // Bodies are limited (with a JSON 413) by readBody; this is only the hard ceiling.
    maxRequestBodySize: Math.max(config.gateway.maxBodyBytes * 4, 16 * 1024 * 1024),
    fetch(request, srv) {
      if (wsPath && request.headers.get("upgrade")?.toLowerCase() === "websocket" && new URL(request.url).pathname === wsPath) {
        if (upgradeMqtt(request, srv)) return undefined;
        return errorResponse(new PlinthError("PLT_BAD_REQUEST", "WebSocket upgrade failed"));
      }
      return app.fetch(request);
    },
    websocket: mqttWebSocketHandler((stream) => broker.handle(stream)),
  }, config.gateway);
  const url = `http://${config.gateway.host}:${server.port}`;
  log.info("gateway listening", { url, ...(wsPath ? { mqttWebSocket: `ws://${config.gateway.host}:${server.port}${wsPath}` } : {}) });

  return {
    app,
    url,
    port: server.port ?? config.gateway.port,
    async stop(graceMs) {
      const drained = server.stop(false);
      const timedOut = await Promise.race([drained.then(() => false), Bun.sleep(graceMs).then(() => true)]);
      if (timedOut) await server.stop(true);
    },
  };
}
