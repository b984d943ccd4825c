/**
 * A fake of what the gateway needs from the loader (runtime/gateway/upstream.ts): services with
 * declared routes, each answered by a function of the test; commits announced when the test says.
 * With it, `createApp(...).fetch(new Request(...))` runs the whole gateway without a socket or a worker.
 */
import Memoirist from "memoirist";
import type { UserConfig } from "../../../config";
import { loadConfig } from "../../../config/load";
import type { Config } from "../../../config/schema";
import { Authenticator } from "../../../runtime/auth/authenticator";
import { PlinthError } from "../../../runtime/errors";
import { ResponseCache } from "../../../runtime/gateway/cache";
import { createApp, type GatewayApp } from "../../../runtime/gateway/gateway";
import { RateLimiter } from "../../../runtime/gateway/ratelimit";
import type { ApiPolicies } from "../../../runtime/gateway/routes";
import type { Upstream, UpstreamMatch, UpstreamService } from "../../../runtime/gateway/upstream";
import { createLogger } from "../../../runtime/log";
import type { CommittedEvent, DeclaredRoute, Manifest } from "../../../runtime/protocol";
import type { StorageState } from "../../../runtime/storage/faults";
import type { HttpRequest, HttpResponse } from "../../../runtime/worker/channel";
import { tempDir, type TempDir } from "../../helpers/tmp";

/** What a handler is handed: the request as the service would see it. */
export type Handled = Omit<HttpRequest, "route"> & { service: UpstreamService; timeoutMs: number };
export type Handler = (req: Handled) => HttpResponse | Promise<HttpResponse>;
export type FakeRoute = DeclaredRoute & { handler?: Handler };

/** A JSON answer as a worker sends it. */
export function json(body: unknown, status = 200, headers: Record<string, string> = {}): HttpResponse {
  return { status, headers: { "content-type": "application/json;charset=utf-8", ...headers }, body: JSON.stringify(body) };
}

export interface FakeService extends UpstreamService {
  readonly host: { manifest: Manifest | null; storage: StorageState | null };
  state: string;
  routes: FakeRoute[];
}

export class FakeUpstream implements Upstream {
  readonly services = new Map<string, FakeService>();
  private readonly routers = new Map<FakeService, Memoirist<number>>();
  /** Service name → the refusal its breaker gives now. */
  readonly refusals = new Map<string, PlinthError>();
  readonly breakers = { admits: (service: string) => this.refusals.get(service) ?? null };
  /** Every request handed to a service, in order. */
  readonly handled: Handled[] = [];
  failed: ReturnType<Upstream["describe"]>["failed"] = [];
  /** Breaker state per service, as describe() reports it. */
  readonly breakerStates = new Map<string, string>();
  private readonly listeners: Array<(service: string, events: readonly CommittedEvent[]) => void> = [];
  private seq = 0;

  /** Puts a service in (a new object each time: a second add of a name is a replacement). */
  add(name: string, routes: FakeRoute[], options: { version?: string; state?: string; manifest?: boolean } = {}): FakeService {
    const manifest: Manifest | null =
      options.manifest === false
        ? null
        : { name, version: options.version ?? "1.0.0", routes: routes.map(({ handler: _, ...r }) => r), actions: [], idempotent: [], actionBreakers: {}, subscriptions: [], needs: [] };
    const service: FakeService = { name, host: { manifest, storage: null }, state: options.state ?? "ready", routes };
    const router = new Memoirist<number>();
    routes.forEach((r, i) => router.add(r.method, r.path, i));
    this.routers.set(service, router);
    this.services.set(name, service);
    return service;
  }

  match(service: string, method: string, path: string): UpstreamMatch {
    const found = this.services.get(service);
    if (!found) throw new PlinthError("PLT_SERVICE_NOT_FOUND", `no service "${service}"`);
    const normalized = path.length > 1 ? path.replace(/\/+$/, "") || "/" : path;
    const hit = this.routers.get(found)!.find(method, normalized);
    if (!hit) throw new PlinthError("PLT_NOT_FOUND", `no route ${method} ${normalized} in service "${service}"`);
    return { service: found, route: hit.store, params: { ...hit.params } };
  }

  http(match: UpstreamMatch, req: Omit<HttpRequest, "route" | "params">, timeoutMs: number): Promise<HttpResponse> {
    const service = match.service as FakeService;
    const handled: Handled = { ...req, params: match.params, service, timeoutMs };
    this.handled.push(handled);
    const handler = service.routes[match.route]!.handler ?? (() => json({ ok: true }));
    try {
      return Promise.resolve(handler(handled));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  onCommit(listener: (service: string, events: readonly CommittedEvent[]) => void): void {
    this.listeners.push(listener);
  }

  /** `service` committed events of these types (as the loader hears them from its worker). */
  commit(service: string, ...types: string[]): void {
    const events = types.map((type) => ({ id: `e${++this.seq}`, type, time: new Date(0).toISOString(), data: null, seq: this.seq }));
    for (const listener of this.listeners) listener(service, events);
  }

  describe(): ReturnType<Upstream["describe"]> {
    return {
      services: [...this.services.values()].map((s) => ({ name: s.name, state: s.state, version: s.host.manifest?.version, breaker: this.breakerStates.get(s.name) ?? "closed" })),
      failed: this.failed,
    };
  }
}

export const SECRET = "a-test-secret-of-at-least-32-characters!";

/** A gateway app over a fake upstream, with real policies (auth, rate limiter, cache) on a clock the test moves. */
export interface Harness extends Disposable {
  app: GatewayApp;
  upstream: FakeUpstream;
  config: Readonly<Config>;
  policies: ApiPolicies;
  dir: TempDir;
  /** What was logged, one JSON line each. */
  logs: string[];
  clock: { now: number };
  /** `app.fetch` on a path of http://plinth.test, awaited. */
  fetch(path: string, init?: RequestInit): Promise<Response>;
}

export async function harness(overrides: UserConfig = {}, build?: (upstream: FakeUpstream) => void): Promise<Harness> {
  const dir = tempDir("plinth-gateway-unit");
  const { config } = await loadConfig({
    cwd: dir.path,
    overrides: { ...overrides, data: { dir: dir.path }, log: { level: "silent" }, auth: { ...overrides.auth, jwt: { secret: SECRET, ...overrides.auth?.jwt } } },
  });
  const logs: string[] = [];
  const log = createLogger({ level: "error", format: "json", write: (line) => logs.push(line) });
  const clock = { now: 1_000_000 };
  const auth = await Authenticator.create(config);
  const policies: ApiPolicies = {
    auth,
    limiter: new RateLimiter(config.gateway.rateLimitKeys, () => clock.now),
    cache: new ResponseCache(config.gateway.cache.maxEntries, config.gateway.cache.maxBytes, () => clock.now),
    clientIp: (request) => request.headers.get("x-test-ip") ?? "10.0.0.1",
  };
  const upstream = new FakeUpstream();
  build?.(upstream);
  const app = createApp(upstream, config, log, policies);
  return {
    app,
    upstream,
    config,
    policies,
    dir,
    logs,
    clock,
    fetch: async (path, init) => app.fetch(new Request(`http://plinth.test${path}`, init)),
    [Symbol.dispose]() {
      auth.close();
      dir[Symbol.dispose]();
    },
  };
}

/** A deferred: a promise the test settles. */
export function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}
