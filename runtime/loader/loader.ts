/**
 * Starts every plugin (the built-in services the platform hands over first, then the plugins
 * folder) in its own worker, reports the ones that fail with file and reason, puts the others in
 * service, replaces and retires them. What is in service is the registry's (registry.ts); requests
 * and calls reach them through the dispatcher (dispatcher.ts), events through the event router
 * (event-router.ts).
 */
import { mkdirSync } from "node:fs";
import { relative } from "node:path";
import type { Config } from "../../config/schema";
import type { Breakers } from "../breaker/call";
import type { Bus } from "../bus/bus";
import type { NodeInfo } from "../bus/cluster/presence";
import { PlinthError } from "../errors";
import type { Logger } from "../log";
import type { Manifest } from "../protocol";
import type { PluginSource } from "../worker/channel";
import { WorkerHost } from "../worker/host";
import { NameClaims } from "./claims";
import { discoverPlugins } from "./discover";
import { Dispatcher, type Transport } from "./dispatcher";
import { EventRouter, type CommitListener } from "./event-router";
import { EventLogs, type EventLogSource } from "./logs";
import { Registry, buildRouter } from "./registry";
import type { Service } from "./service";

export type { LoadFailure, RouteMatch, Service } from "./service";

/** The built-in services the platform runs (their code is the binary's), and the one that may call `$node.*`. */
export interface Builtins {
  names: readonly string[];
  node: string | null;
}

export interface LoaderOptions {
  builtins?: Builtins;
  /** Where requests and calls go (default: this node's workers). */
  transport?: Transport;
  /** Where subscribers catch up from (default: this node's SQLite files). */
  logs?: EventLogSource;
  /** The cluster's nodes (default: this node alone). */
  nodes?: () => NodeInfo[];
}

/** A plugin whose worker startWorkers() started: `ready` settles once it is ready or failed. */
interface Launch {
  origin: string;
  source: PluginSource;
  host: WorkerHost;
  ready: Promise<Manifest>;
}

export class Loader {
  readonly registry: Registry;
  readonly dispatcher: Dispatcher;
  readonly events: EventRouter;
  private readonly logs: EventLogSource;
  private readonly builtins: Builtins;
  /** Workers started by startWorkers() and not yet put in service by start(). */
  private launched: { launches: Launch[]; settled: Promise<Array<PromiseSettledResult<Manifest>>> } | null = null;

  constructor(
    readonly config: Readonly<Config>,
    readonly breakers: Breakers,
    private readonly log: Logger,
    options: LoaderOptions = {},
  ) {
    this.builtins = options.builtins ?? { names: [], node: null };
    this.logs = options.logs ?? new EventLogs(config.data.dir, this.log);
    this.registry = new Registry(config, breakers, this.logs, log, options.nodes);
    this.dispatcher = new Dispatcher(this.registry, breakers, options.transport);
    this.events = new EventRouter(this.registry, this.logs, config, log);
  }

  /** What the gateway asks of the services behind it (gateway/upstream.ts), from the parts that answer it. */
  get upstream() {
    return {
      services: this.registry.services,
      breakers: this.breakers,
      match: (service: string, method: string, path: string) => this.registry.match(service, method, path),
      http: (...args: Parameters<Dispatcher["http"]>) => this.dispatcher.http(...args),
      onCommit: (listener: CommitListener) => this.events.onCommit(listener),
      describe: () => this.registry.describe(),
    };
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
      ...this.builtins.names.map((name) => ({ origin: `builtin:${name}`, source: { kind: "builtin", name } as const })),
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
    this.events.attach(bus);
    this.startWorkers();
    const { launches, settled } = this.launched!;
    for (const [i, result] of (await settled).entries()) {
      const { origin, source, host } = launches[i]!;
      if (result.status === "rejected") this.registry.reportFailure(origin, PlinthError.from(result.reason, "PLT_PLUGIN_LOAD"));
      // What it committed but did not publish (before a crash) is published as its events port opens.
      else await this.register(origin, source, host, result.value, true);
    }
    this.launched = null;
    const services = this.registry.services;
    // Now that every service is known, subscribers catch up from the logs.
    for (const service of services.values()) this.events.resume(service);
    for (const service of services.values()) {
      const missing = service.host.manifest!.needs.filter((n) => !services.has(n));
      if (missing.length) this.log.warn("service needs missing services", { service: service.name, missing });
    }
  }

  async stop(): Promise<void> {
    // Launched but never put in service (start-up failed in between): their workers stop too.
    const launched = this.launched?.launches ?? [];
    this.launched = null;
    await Promise.all(launched.map((l) => l.host.stop()));
    const services = [...this.registry.services.values()];
    this.registry.services.clear();
    await Promise.all(services.map(async (s) => {
      await this.events.quiesce(s);
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
    this.registry.forgetFailures(origin);
    const host = this.createHost({ kind: "file", path }, origin, async (m) => claim(m));
    try {
      await host.start();
      return host;
    } catch (err) {
      this.registry.reportFailure(origin, PlinthError.from(err, "PLT_PLUGIN_LOAD"));
      return null;
    }
  }

  /**
   * Puts a launched host in service. When it replaces `previous`, that one stops receiving events
   * first (so no event goes to both), then the new one takes its name in the routing table.
   */
  async install(host: WorkerHost, path: string, previous?: Service): Promise<Service> {
    if (previous) {
      await this.events.quiesce(previous);
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
    this.events.resume(service);
    return service;
  }

  /**
   * Takes a service out: new requests no longer reach it (unless a replacement took its name),
   * its deliveries stop, in-flight requests finish (up to graceMs), then its worker stops.
   * Its database file stays.
   */
  async retire(service: Service, graceMs: number): Promise<void> {
    if (this.registry.services.get(service.name) === service) {
      this.registry.services.delete(service.name);
      // No replacement took its name: its breakers and bulkhead go too (calls admitted finish on them).
      this.breakers.retire(service.name);
    }
    await this.events.quiesce(service);
    await service.host.drain(graceMs);
    await service.host.stop();
    service.events?.();
    this.log.info("service retired", { service: service.name, from: service.origin });
  }

  private createHost(source: PluginSource, origin: string, claim: (manifest: Manifest) => Promise<void>): WorkerHost {
    const log = this.log.child(source.kind === "builtin" ? source.name : origin);
    // Decided by where this host loads its code from (the binary's built-in), not by the name its worker reports.
    const node = source.kind === "builtin" && source.name === this.builtins.node;
    const host: WorkerHost = new WorkerHost({
      source,
      config: this.config,
      log,
      claim,
      configFor: (name) => (this.config.plugins.config[name] as Record<string, unknown> | undefined) ?? {},
      onCall: (from, call) => this.dispatcher.call(from, call.target, call.params, call.deadline, call.identity, node),
      onEvents: (from, events) => this.events.committed(from, events),
      onReady: (manifest) => {
        this.events.logOpened(manifest.name);
        // Only this host's own service: during a replacement the name still belongs to the old version.
        const service = this.registry.serviceOf(host);
        if (!service) return;
        service.router = buildRouter(manifest);
        // A restarted worker: it publishes on a port of its own, what the crash left unsent first.
        this.events.serveEvents(service, true);
      },
      onStateChange: (state, reason) => {
        log.info("service state", { state, reason: reason?.message });
        const service = this.registry.serviceOf(host);
        if (!service) return;
        if (state === "ready" && !service.quiesced) this.events.resume(service);
        else for (const d of service.deliveries) d.pause();
      },
    });
    return host;
  }

  /** Puts a ready host in service under its name; `relay`: it publishes its unsent events at once. */
  private async register(origin: string, source: PluginSource, host: WorkerHost, manifest: Manifest, relay: boolean): Promise<Service> {
    const path = source.kind === "file" ? source.path : null;
    const deliveries = this.events.deliveries(host, manifest);
    const service: Service = { name: manifest.name, origin, path, host, router: buildRouter(manifest), unsubscribe: [], events: null, deliveries, quiesced: false };
    this.registry.services.set(manifest.name, service);
    this.events.serveEvents(service, relay);
    await this.events.subscribe(service, manifest);
    this.log.info("service ready", { service: manifest.name, version: manifest.version, from: origin });
    return service;
  }
}

function originOf(path: string): string {
  return relative(process.cwd(), path) || path;
}
