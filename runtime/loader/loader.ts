/**
 * Starts every plugin (built-in services first in the list, then the plugins
 * folder) in its own worker, reports the ones that fail with file and reason,
 * and routes calls, HTTP requests and events between them. All cross-service
 * traffic passes a per-target circuit breaker.
 */
import { mkdirSync } from "node:fs";
import { relative } from "node:path";
import Memoirist from "memoirist";
import type { Config } from "../../config/schema";
import { builtinServiceNames } from "../../services/names";
import { Breakers, parseTarget } from "../breaker/call";
import type { Bus } from "../broker/bus";
import { PlinthError, type WireError } from "../errors";
import type { Logger } from "../log";
import { Topics, toEnvelope, type Manifest } from "../protocol";
import type { HttpRequest, HttpResponse, PluginSource } from "../worker/channel";
import { WorkerHost, type CallMessage } from "../worker/host";
import { NameClaims } from "./claims";
import { Delivery } from "./delivery";
import { discoverPlugins } from "./discover";
import { publishEvents, toCloudEvent } from "./events";
import { EventLogs } from "./logs";

export interface Service {
  readonly name: string;
  readonly origin: string;
  readonly host: WorkerHost;
  router: Memoirist<number>;
  unsubscribe: Array<() => Promise<void>>;
  /** One durable delivery per subscription, for service events. */
  deliveries: Delivery[];
}

export interface LoadFailure {
  origin: string;
  error: WireError;
}

export interface RouteMatch {
  service: Service;
  route: number;
  params: Record<string, string>;
}

export class Loader {
  readonly services = new Map<string, Service>();
  readonly failures: LoadFailure[] = [];
  private readonly logs: EventLogs;

  constructor(
    private readonly config: Readonly<Config>,
    private readonly bus: Bus,
    readonly breakers: Breakers,
    private readonly log: Logger,
  ) {
    this.logs = new EventLogs(config.data.dir);
  }

  async start(): Promise<void> {
    mkdirSync(this.config.data.dir, { recursive: true });
    const sources: Array<{ origin: string; source: PluginSource }> = [
      ...builtinServiceNames.map((name) => ({ origin: `builtin:${name}`, source: { kind: "builtin", name } as const })),
      ...discoverPlugins(this.config.plugins.dir).map((path) => ({
        origin: relative(process.cwd(), path) || path,
        source: { kind: "file", path } as const,
      })),
    ];
    const claims = new NameClaims(sources.map((s) => s.origin));
    const hosts = sources.map(({ origin, source }, i) => ({
      origin,
      host: this.createHost(source, origin, (manifest) => claims.claim(i, manifest.name)),
    }));
    const results = await Promise.allSettled(
      hosts.map(({ host }, i) =>
        host.start().catch((err: unknown) => {
          claims.failed(i);
          throw err;
        }),
      ),
    );
    for (const [i, result] of results.entries()) {
      const { origin, host } = hosts[i]!;
      if (result.status === "rejected") this.reportFailure(origin, PlinthError.from(result.reason, "PLT_PLUGIN_LOAD"));
      else await this.register(origin, host, result.value);
    }
    // Now that every service is known: subscribers catch up from the logs, then what was
    // committed but not published before a crash is published.
    for (const service of this.services.values()) this.resume(service);
    for (const service of this.services.values()) service.host.relay();
    for (const service of this.services.values()) {
      const missing = service.host.manifest!.needs.filter((n) => !this.services.has(n));
      if (missing.length) this.log.warn("service needs missing services", { service: service.name, missing });
    }
  }

  async stop(): Promise<void> {
    const services = [...this.services.values()];
    this.services.clear();
    for (const s of services) for (const d of s.deliveries) d.pause();
    await Promise.all(services.map(async (s) => {
      await Promise.all(s.unsubscribe.map((u) => u()));
      await s.host.stop();
    }));
    this.logs.close();
  }

  /** Finds the service and route for `METHOD /api/<service><path>`. */
  match(serviceName: string, method: string, path: string): RouteMatch {
    const service = this.services.get(serviceName);
    if (!service) throw new PlinthError("PLT_SERVICE_NOT_FOUND", `no service "${serviceName}"`);
    const normalized = path.length > 1 ? path.replace(/\/+$/, "") || "/" : "/";
    const found = service.router.find(method, normalized);
    if (!found) throw new PlinthError("PLT_NOT_FOUND", `no route ${method} ${normalized} in service "${serviceName}"`);
    return { service, route: found.store, params: found.params };
  }

  /** Gateway → service, through the target's breaker. */
  http(match: RouteMatch, req: Omit<HttpRequest, "route" | "params">, timeoutMs: number): Promise<HttpResponse> {
    const message = { t: "http" as const, req: { ...req, route: match.route, params: match.params } };
    return this.breakers.guard(match.service.name, () => match.service.host.request(message, timeoutMs)) as Promise<HttpResponse>;
  }

  /** Service → service (or gateway → action), through the target's breaker. */
  async call(caller: string | null, target: string, params: unknown, timeoutMs = this.config.calls.timeoutMs): Promise<unknown> {
    const { service: name, action } = parseTarget(target);
    if (name === "$node") return this.nodeAction(action, params);
    const service = this.services.get(name);
    if (!service) throw new PlinthError("PLT_SERVICE_NOT_FOUND", `no service "${name}" (calling ${target})`);
    return this.breakers.guard(name, () => service.host.request({ t: "action", action, params, caller }, timeoutMs));
  }

  /** The state of every service and every plugin that failed to load. */
  describe() {
    const breakers = this.breakers.snapshot();
    return {
      services: [...this.services.values()].map((s) => ({
        name: s.name,
        version: s.host.manifest?.version,
        origin: s.origin,
        state: s.host.state,
        restarts: s.host.restarts,
        breaker: breakers[s.name]?.state ?? "closed",
        routes: s.host.manifest?.routes.map((r) => `${r.method} /api/${s.name}${r.path === "/" ? "" : r.path}`) ?? [],
        actions: s.host.manifest?.actions ?? [],
        subscriptions: s.host.manifest?.subscriptions ?? [],
        needs: s.host.manifest?.needs ?? [],
        ...(s.host.lastError ? { lastError: s.host.lastError } : {}),
      })),
      failed: this.failures.map((f) => ({ origin: f.origin, error: f.error })),
    };
  }

  /** The node's own actions, for the built-in platform service. */
  private nodeAction(action: string, params: unknown): Promise<unknown> | unknown {
    const { service, letter } = (params ?? {}) as { service?: string; letter?: number };
    const target = () => {
      const found = service === undefined ? undefined : this.services.get(service);
      if (!found) throw new PlinthError("PLT_SERVICE_NOT_FOUND", `no service "${service}"`);
      return found.host;
    };
    switch (action) {
      case "services":
        return this.describe();
      case "breakers":
        return this.breakers.snapshot();
      case "deadletters":
        return target().request({ t: "deadletters" }, this.config.calls.timeoutMs);
      case "events": {
        const { after = 0, limit = 100 } = (params ?? {}) as { after?: number; limit?: number };
        const name = target().manifest?.name ?? String(service);
        return this.logs.read(name, after, limit).map((e) => ({ topic: Topics.event(name, e.type), ...toEnvelope(name, e) }));
      }
      case "redrive":
        return target().request({ t: "redrive", letter: Number(letter) }, this.config.calls.timeoutMs);
      default:
        throw new PlinthError("PLT_ACTION_NOT_FOUND", `$node has no action "${action}"`);
    }
  }

  private reportFailure(origin: string, error: PlinthError): void {
    this.failures.push({ origin, error: error.toWire() });
    this.log.error("plugin failed to load", { plugin: origin, code: error.code, reason: error.message });
  }

  private createHost(source: PluginSource, origin: string, claim: (manifest: Manifest) => Promise<void>): WorkerHost {
    const log = this.log.child(source.kind === "builtin" ? source.name : origin);
    const host: WorkerHost = new WorkerHost({
      source,
      dataDir: this.config.data.dir,
      retainSent: this.config.events.retainSent,
      retainSentMs: this.config.events.retainSentMs,
      log,
      logFormat: this.config.log.format,
      claim,
      configFor: (name) => (this.config.plugins.config[name] as Record<string, unknown> | undefined) ?? {},
      startTimeoutMs: this.config.workers.startTimeoutMs,
      restartDelayMs: this.config.workers.restartDelayMs,
      maxRestarts: this.config.workers.maxRestarts,
      onCall: (from, call: CallMessage) => this.call(from, call.target, call.params, call.timeoutMs),
      onEvents: (from, events) => {
        for (const s of this.services.values()) for (const d of s.deliveries) d.offer(from, events);
        return publishEvents(this.bus, from, events, this.log);
      },
      onReady: (manifest) => {
        const service = this.services.get(manifest.name);
        if (service) service.router = buildRouter(manifest);
      },
      onStateChange: (state, reason) => {
        log.info("service state", { state, reason: reason?.message });
        const service = [...this.services.values()].find((s) => s.host === host);
        if (!service) return;
        if (state === "ready") this.resume(service);
        else for (const d of service.deliveries) d.pause();
      },
    });
    return host;
  }

  private async register(origin: string, host: WorkerHost, manifest: Manifest): Promise<void> {
    const options = { maxAttempts: this.config.events.maxAttempts, retryDelayMs: this.config.events.retryDelayMs, timeoutMs: this.config.calls.timeoutMs };
    const deliveries = manifest.subscriptions.map((filter, index) => new Delivery(host, index, filter, this.logs, options, this.log));
    const service: Service = { name: manifest.name, origin, host, router: buildRouter(manifest), unsubscribe: [], deliveries };
    this.services.set(manifest.name, service);
    for (const [index, filter] of manifest.subscriptions.entries()) {
      service.unsubscribe.push(await this.bus.subscribe(filter, (topic, payload) => this.deliver(service, index, topic, payload)));
    }
    this.log.info("service ready", { service: manifest.name, version: manifest.version, from: origin });
  }

  /** Starts (or restarts) a service's deliveries from the cursors its database reported. */
  private resume(service: Service): void {
    for (const delivery of service.deliveries) {
      const cursors = new Map(service.host.cursors.filter((c) => c.subscription === delivery.filter).map((c) => [c.source, c.seq]));
      delivery.resume(cursors, this.services.keys());
    }
  }

  /** MQTT messages outside the services' namespace (devices, other programs): best effort. */
  private deliver(service: Service, subscription: number, topic: string, payload: Buffer): void {
    if (topic.startsWith(`${Topics.eventsRoot}/`)) return; // service events arrive through the durable deliveries
    const event = toCloudEvent(topic, payload);
    service.host
      .request({ t: "event", subscription, topic, event }, this.config.calls.timeoutMs)
      .catch((err: PlinthError) => this.log.warn("event handler failed", { service: service.name, topic, id: event.id, error: err.message }));
  }
}

function buildRouter(manifest: Manifest): Memoirist<number> {
  const router = new Memoirist<number>();
  manifest.routes.forEach((r, i) => router.add(r.method, r.path, i));
  return router;
}
