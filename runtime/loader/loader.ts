/**
 * Starts every plugin (built-in services first in the list, then the plugins
 * folder) in its own worker, reports the ones that fail with file and reason,
 * and routes calls, HTTP requests and events between them. All cross-service
 * traffic passes a per-target circuit breaker.
 */
import { mkdirSync } from "node:fs";
import { relative, resolve, sep } from "node:path";
import Memoirist from "memoirist";
import type { BreakerOverride } from "../../config/fields";
import type { Config } from "../../config/schema";
import { builtinServiceNames, nodeServiceName } from "../../services/names";
import { Breakers, parseTarget, type Report } from "../breaker/call";
import type { Bus } from "../bus/bus";
import type { Identity } from "../auth/identity";
import { PlinthError } from "../errors";
import type { Logger } from "../log";
import { Topics, type CommittedEvent, type Manifest } from "../protocol";
import type { HttpRequest, HttpResponse, PluginSource } from "../worker/channel";
import { storeOptions } from "../storage/open";
import { WorkerHost } from "../worker/host";
import { NameClaims } from "./claims";
import { Delivery } from "./delivery";
import { discoverPlugins } from "./discover";
import { toCloudEvent } from "./events";
import { EventLogs } from "./logs";
import { describe, nodeAction, type NodeDescription } from "./node";
import type { LoadFailure, RouteMatch, Service } from "./service";

export type { LoadFailure, RouteMatch, Service } from "./service";

/** A plugin whose worker startWorkers() started: `ready` settles once it is ready or failed. */
interface Launch {
  origin: string;
  source: PluginSource;
  host: WorkerHost;
  ready: Promise<Manifest>;
}

export class Loader {
  readonly services = new Map<string, Service>();
  readonly failures: LoadFailure[] = [];
  readonly logs: EventLogs;
  private readonly commitListeners: Array<(service: string, events: readonly CommittedEvent[]) => void> = [];

  /** The broker's bus, from start() on. */
  private bus: Bus | null = null;
  /** Workers started by startWorkers() and not yet put in service by start(). */
  private launched: { launches: Launch[]; settled: Promise<Array<PromiseSettledResult<Manifest>>> } | null = null;

  constructor(
    readonly config: Readonly<Config>,
    readonly breakers: Breakers,
    private readonly log: Logger,
  ) {
    this.logs = new EventLogs(config.data.dir, this.log);
  }

  /**
   * Phase 1 of start-up: starts every plugin's worker (built-ins first, then the plugins folder).
   * Nothing here needs the broker, so the platform calls it first: the workers load and open their
   * databases on the other core while the main thread starts the broker.
   */
  startWorkers(): void {
    this.launched ??= this.spawnAll();
  }

  private spawnAll(): NonNullable<Loader["launched"]> {
    mkdirSync(this.config.data.dir, { recursive: true });
    const sources: Array<{ origin: string; source: PluginSource }> = [
      ...builtinServiceNames.map((name) => ({ origin: `builtin:${name}`, source: { kind: "builtin", name } as const })),
      ...discoverPlugins(this.config.plugins.dir).map((path) => ({ origin: originOf(path), source: { kind: "file", path } as const })),
    ];
    const claims = new NameClaims(sources.map((s) => s.origin));
    const launches = sources.map(({ origin, source }, i) => {
      const host = this.createHost(source, origin, (manifest) => claims.claim(i, manifest.name));
      const ready = host.start().catch((err: unknown) => {
        claims.failed(i);
        throw err;
      });
      return { origin, source, host, ready };
    });
    // Watched at once, so that a launch failing before start() looks (or when start-up is abandoned) is not an unhandled rejection.
    return { launches, settled: Promise.allSettled(launches.map((l) => l.ready)) };
  }

  /** Phase 2, once the broker is up: puts the launched plugins in service (launching them first if needed). */
  async start(bus: Bus): Promise<void> {
    this.bus = bus;
    // A broker that was lost took the events ports with it: each service publishes on a new one, what it had not had acknowledged first.
    bus.onReconnect(() => {
      for (const service of this.services.values()) this.serveEvents(service, true);
    });
    this.startWorkers();
    const { launches, settled } = this.launched!;
    for (const [i, result] of (await settled).entries()) {
      const { origin, source, host } = launches[i]!;
      if (result.status === "rejected") this.reportFailure(origin, PlinthError.from(result.reason, "PLT_PLUGIN_LOAD"));
      // What it committed but did not publish (before a crash) is published as its events port opens.
      else await this.register(origin, source, host, result.value, true);
    }
    this.launched = null;
    // Now that every service is known, subscribers catch up from the logs.
    for (const service of this.services.values()) this.resume(service);
    for (const service of this.services.values()) {
      const missing = service.host.manifest!.needs.filter((n) => !this.services.has(n));
      if (missing.length) this.log.warn("service needs missing services", { service: service.name, missing });
    }
  }

  async stop(): Promise<void> {
    // Launched but never put in service (start-up failed in between): their workers stop too.
    const launched = this.launched?.launches ?? [];
    this.launched = null;
    await Promise.all(launched.map((l) => l.host.stop()));
    const services = [...this.services.values()];
    this.services.clear();
    await Promise.all(services.map(async (s) => {
      await this.quiesce(s);
      await s.host.stop();
      s.events?.();
    }));
    this.logs.close();
  }

  /**
   * Starts the plugin at `path` in a new worker, beside whatever is serving. `claim` may refuse its
   * name. Resolves with the ready host, or null after reporting why it failed.
   */
  async launch(path: string, claim: (manifest: Manifest) => void): Promise<WorkerHost | null> {
    const origin = originOf(path);
    this.forgetFailures(origin);
    const host = this.createHost({ kind: "file", path }, origin, async (m) => claim(m));
    try {
      await host.start();
      return host;
    } catch (err) {
      this.reportFailure(origin, PlinthError.from(err, "PLT_PLUGIN_LOAD"));
      return null;
    }
  }

  /**
   * Puts a launched host in service. When it replaces `previous`, that one stops receiving events
   * first (so no event goes to both), then the new one takes its name in the routing table.
   */
  async install(host: WorkerHost, path: string, previous?: Service): Promise<Service> {
    if (previous) {
      await this.quiesce(previous);
      // A batch the old version is still handling is not handed to the new one too: its cursor moves
      // when the old one is done, and the new one skips what that cursor has passed. Not longer than
      // the grace period: a batch past its timeout is the old worker's to finish (retire drains it).
      await Promise.race([Promise.all(previous.deliveries.map((d) => d.settled())), Bun.sleep(this.config.shutdown.graceMs)]);
    }
    // A version that was serving publishes what it committed until it stops: relaying now would
    // publish again the rows whose acks are still on their way. Otherwise (a new plugin, or one
    // replacing a failed version) what its database holds unsent is published now.
    const service = await this.register(originOf(path), { kind: "file", path }, host, host.manifest!, previous?.host.state !== "ready");
    // Its breaker settings may have changed with the new version: rebuilt on the next call.
    this.breakers.forget(service.name);
    this.resume(service);
    return service;
  }

  /**
   * Takes a service out: new requests no longer reach it (unless a replacement took its name),
   * its deliveries stop, in-flight requests finish (up to graceMs), then its worker stops.
   * Its database file stays.
   */
  async retire(service: Service, graceMs: number): Promise<void> {
    if (this.services.get(service.name) === service) {
      this.services.delete(service.name);
      // No replacement took its name: its breakers and bulkhead go too (calls admitted finish on them).
      this.breakers.retire(service.name);
    }
    await this.quiesce(service);
    await service.host.drain(graceMs);
    await service.host.stop();
    service.events?.();
    this.log.info("service retired", { service: service.name, from: service.origin });
  }

  /**
   * Breaker settings for a target, lowest precedence first: the plugin's own (`breaker` on the
   * plugin or the action), then platform.config.ts (`breaker.services` / `breaker.actions`).
   */
  breakerOverrides(target: string): BreakerOverride | undefined {
    const dot = target.indexOf(".");
    const manifest = this.services.get(dot < 0 ? target : target.slice(0, dot))?.host.manifest;
    const { services, actions } = this.config.breaker;
    if (dot < 0) return { ...manifest?.breaker, ...services[target] };
    const fromPlugin = manifest?.actionBreakers[target.slice(dot + 1)];
    const fromConfig = actions[target];
    return fromPlugin || fromConfig ? { ...fromPlugin, ...fromConfig } : undefined;
  }

  /** The service loaded from the plugin entry file `path`, if any. */
  serviceAt(path: string): Service | undefined {
    return [...this.services.values()].find((s) => s.path === path);
  }

  /** Finds the service and route for `METHOD /api/<service><path>`. */
  match(serviceName: string, method: string, path: string): RouteMatch {
    const service = this.services.get(serviceName);
    if (!service) throw new PlinthError("PLT_SERVICE_NOT_FOUND", `no service "${serviceName}"`);
    let end = path.length;
    while (end > 1 && path.charCodeAt(end - 1) === 47 /* "/" */) end--;
    const normalized = end === path.length ? path : path.slice(0, end);
    const found = service.router.find(method, normalized);
    if (!found) throw new PlinthError("PLT_NOT_FOUND", `no route ${method} ${normalized} in service "${serviceName}"`);
    return { service, route: found.store, params: found.params };
  }

  /** Gateway → service, through the target's bulkhead and breaker. */
  http(match: RouteMatch, req: Omit<HttpRequest, "route" | "params">, timeoutMs: number): Promise<HttpResponse> {
    const name = match.service.name;
    const attempt = (report?: Report) => {
      // A request the bulkhead queued goes to whichever version serves the name by then, when that
      // version has the same route under the same policy (the gateway checked the caller against it).
      const serving = this.services.get(name);
      const to = serving && serving !== match.service ? sameRoute(match, serving) ?? match : match;
      const message = { t: "http" as const, req: { ...req, route: to.route, params: to.params } };
      return to.service.host.request(message, timeoutMs, report);
    };
    return this.breakers.guardReported(name, attempt, undefined, req.deadline) as Promise<HttpResponse>;
  }

  /**
   * Service → service (or gateway → action), through the target's bulkhead and breaker. Not async: no extra promise per call.
   * The reserved `$node.*` actions answer only when `node` is set: the loader sets it for calls from the worker host of
   * the built-in platform service, never from what a worker says about itself.
   */
  call(caller: string | null, target: string, params: unknown, deadline = Number.POSITIVE_INFINITY, identity: Identity | null = null, node = false): Promise<unknown> {
    try {
      const { service: name, action } = parseTarget(target);
      if (name === "$node") {
        if (!node) throw new PlinthError("PLT_FORBIDDEN", `${target} is reserved for the built-in ${nodeServiceName} service`);
        return Promise.resolve(nodeAction(this, action, params));
      }
      const service = this.services.get(name);
      if (!service) throw new PlinthError("PLT_SERVICE_NOT_FOUND", `no service "${name}" (calling ${target})`);
      // One deadline for the whole chain: this call gets what is left of it, at most calls.timeoutMs.
      const end = Math.min(deadline, Date.now() + this.config.calls.timeoutMs);
      // The identity travels only when there is one (JSON leaves an undefined field out).
      const message = { t: "action" as const, action, params, caller, deadline: end, identity: identity ?? undefined };
      const attempt = (report?: Report) => {
        const left = end - Date.now();
        // A retry, or a run the bulkhead queued, goes to whichever version serves the name by then.
        if (left > 0) return (this.services.get(name) ?? service).host.request(message, left, report);
        const late = new PlinthError("PLT_TIMEOUT", `deadline passed before calling ${target}`);
        report?.(late);
        return Promise.reject(late);
      };
      if (!service.host.manifest?.idempotent.includes(action)) return this.breakers.guardReported(name, attempt, action, end);
      const { retries, retryDelayMs } = this.config.calls;
      return this.breakers.guard(name, attempt, { retries, retryDelayMs, deadline: end }, action);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Hears every service's committed events synchronously, as they reach the host: before the
   * reply of the handler that committed them is answered (the gateway cache relies on this).
   */
  onCommit(listener: (service: string, events: readonly CommittedEvent[]) => void): void {
    this.commitListeners.push(listener);
  }

  /** The state of every service and every plugin that failed to load. */
  describe(): NodeDescription {
    return describe(this);
  }

  /** The service a host serves, if it is in service (not by name: a replacement shares it). */
  private serviceOf(host: WorkerHost): Service | undefined {
    for (const service of this.services.values()) if (service.host === host) return service;
    return undefined;
  }

  /** Stops a service's event deliveries and MQTT subscriptions (idempotent). */
  private async quiesce(service: Service): Promise<void> {
    service.quiesced = true;
    for (const d of service.deliveries) d.pause();
    const unsubscribe = service.unsubscribe.splice(0);
    await Promise.all(unsubscribe.map((u) => u()));
  }

  /**
   * Forgets the load failures of plugins whose entry file was `path` or lay inside it (a plugin's
   * folder): the file is gone, so it no longer fails to load.
   */
  forgetFailuresUnder(path: string): void {
    const gone = resolve(path);
    for (let i = this.failures.length - 1; i >= 0; i--) {
      const origin = this.failures[i]!.origin;
      if (origin.startsWith("builtin:")) continue;
      const file = resolve(origin);
      if (file === gone || file.startsWith(gone + sep)) this.failures.splice(i, 1);
    }
  }

  private forgetFailures(origin: string): void {
    for (let i = this.failures.length - 1; i >= 0; i--) if (this.failures[i]!.origin === origin) this.failures.splice(i, 1);
  }

  private reportFailure(origin: string, error: PlinthError): void {
    this.failures.push({ origin, error: error.toWire() });
    this.log.error("plugin failed to load", { plugin: origin, code: error.code, reason: error.message });
  }

  private createHost(source: PluginSource, origin: string, claim: (manifest: Manifest) => Promise<void>): WorkerHost {
    const log = this.log.child(source.kind === "builtin" ? source.name : origin);
    // Decided by where this host loads its code from (the binary's built-in), not by the name its worker reports.
    const node = source.kind === "builtin" && source.name === nodeServiceName;
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
      heartbeatMs: this.config.workers.heartbeatMs,
      heartbeatTimeoutMs: this.config.workers.heartbeatTimeoutMs,
      maxHeapBytes: this.config.workers.maxHeapBytes,
      groupCommitMs: this.config.workers.groupCommitMs,
      store: storeOptions(this.config.data),
      restartDelayMs: this.config.workers.restartDelayMs,
      maxRestarts: this.config.workers.maxRestarts,
      onCall: (from, call) => this.call(from, call.target, call.params, call.deadline, call.identity, node),
      onEvents: (from, events) => {
        for (const listener of this.commitListeners) listener(from, events);
        for (const s of this.services.values()) for (const d of s.deliveries) d.offer(from, events);
      },
      onReady: (manifest) => {
        // The worker opened its log: a new generation (the log went back) rebases the subscribers past it.
        const generation = this.logs.refresh(manifest.name);
        if (generation) for (const s of this.services.values()) for (const d of s.deliveries) d.rebase(manifest.name, generation);
        // Only this host's own service: during a replacement the name still belongs to the old version.
        const service = this.serviceOf(host);
        if (!service) return;
        service.router = buildRouter(manifest);
        // A restarted worker: it publishes on a port of its own, what the crash left unsent first.
        this.serveEvents(service, true);
      },
      onStateChange: (state, reason) => {
        log.info("service state", { state, reason: reason?.message });
        const service = this.serviceOf(host);
        if (!service) return;
        if (state === "ready" && !service.quiesced) this.resume(service);
        else for (const d of service.deliveries) d.pause();
      },
    });
    return host;
  }

  /** Puts a ready host in service under its name; `relay`: it publishes its unsent events at once. */
  private async register(origin: string, source: PluginSource, host: WorkerHost, manifest: Manifest, relay: boolean): Promise<Service> {
    const options = { maxAttempts: this.config.events.maxAttempts, retryDelayMs: this.config.events.retryDelayMs, timeoutMs: this.config.calls.timeoutMs };
    const deliveries = manifest.subscriptions.map((filter, index) => new Delivery(host, index, filter, this.logs, options, this.log));
    const path = source.kind === "file" ? source.path : null;
    const service: Service = { name: manifest.name, origin, path, host, router: buildRouter(manifest), unsubscribe: [], events: null, deliveries, quiesced: false };
    this.services.set(manifest.name, service);
    this.serveEvents(service, relay);
    for (const [index, filter] of manifest.subscriptions.entries()) {
      service.unsubscribe.push(await this.bus!.subscribe(filter, (topic, payload) => this.deliver(service, index, topic, payload)));
    }
    this.log.info("service ready", { service: manifest.name, version: manifest.version, from: origin });
    return service;
  }

  /** Has the bus publish what the service's current worker commits, from a new events port. */
  private serveEvents(service: Service, relay: boolean): void {
    service.events?.();
    const port = service.host.eventsPort(relay);
    service.events = port && this.bus!.serveEvents(port, service.name, this.logs.generation(service.name));
  }

  /** Starts (or restarts) a service's deliveries from the cursors its database reported. */
  private resume(service: Service): void {
    for (const delivery of service.deliveries) {
      const cursors = new Map(service.host.cursors.filter((c) => c.subscription === delivery.filter).map((c) => [c.source, c]));
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

function originOf(path: string): string {
  return relative(process.cwd(), path) || path;
}

/** `match`'s route in the version `serving` when it declares it with the same method, path and policy. */
function sameRoute(match: RouteMatch, serving: Service): RouteMatch | undefined {
  const was = match.service.host.manifest?.routes[match.route];
  const routes = serving.host.manifest?.routes;
  if (!was || !routes) return undefined;
  const route = routes.findIndex((r) => r.method === was.method && r.path === was.path && JSON.stringify(r.auth) === JSON.stringify(was.auth));
  return route < 0 ? undefined : { service: serving, route, params: match.params };
}

function buildRouter(manifest: Manifest): Memoirist<number> {
  const router = new Memoirist<number>();
  manifest.routes.forEach((r, i) => router.add(r.method, r.path, i));
  return router;
}
