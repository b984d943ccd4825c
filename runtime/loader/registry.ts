/**
 * The services in service on this node, by name, and the plugins that failed to load: route
 * matching, breaker settings from the manifests, and what /health and `$node.services` describe.
 */
import { resolve, sep } from "node:path";
import Memoirist from "memoirist";
import type { BreakerOverride } from "../../config/fields";
import type { Config } from "../../config/schema";
import type { Breakers } from "../breaker/call";
import type { NodeInfo } from "../bus/cluster/presence";
import { PlinthError } from "../errors";
import type { Logger } from "../log";
import type { Manifest } from "../protocol";
import type { WorkerHost } from "../worker/host";
import type { EventLogSource } from "./logs";
import { describe, type NodeDescription, type NodeView } from "./node";
import type { Instance, LoadFailure, RemoteService, RouteMatch, Service } from "./service";

export class Registry implements NodeView {
  readonly services = new Map<string, Service>();
  readonly failures: LoadFailure[] = [];
  /** Services other nodes host (in a cluster), by name: one per node, taken in turn. */
  private remote = new Map<string, RemoteService[]>();
  private turn = 0;
  private readonly since = new Date().toISOString();

  constructor(
    readonly config: Readonly<Config>,
    readonly breakers: Breakers,
    readonly logs: EventLogSource,
    private readonly log: Logger,
    /** The cluster's nodes, from its presence; without a cluster, this node alone. */
    readonly nodes: () => NodeInfo[] = () => [{ node: "local", state: "up", services: [...this.services.keys()].sort(), at: this.since }],
  ) {}

  /**
   * Where a request to `name` goes: the service here if it runs here, else another node's, in turn
   * (`advance`: this is the request's turn; without it, whose turn it is, for a look at its manifest).
   */
  instance(name: string, advance = true): Instance | undefined {
    const local = this.services.get(name);
    if (local) return local;
    const remote = this.remote.get(name);
    return remote && remote[(advance ? this.turn++ : this.turn) % remote.length];
  }

  /** Every instance of `name`: the service here alone if it runs here, else the other nodes' (in no turn). */
  instances(name: string): readonly Instance[] {
    const local = this.services.get(name);
    return local ? [local] : (this.remote.get(name) ?? []);
  }

  /** The services only other nodes host. */
  remoteSources(): string[] {
    return [...this.remote.keys()].filter((name) => !this.services.has(name));
  }

  /** The services the other nodes that are up host, from their announcements. */
  setRemote(nodes: readonly NodeInfo[], self: string): void {
    const remote = new Map<string, RemoteService[]>();
    for (const node of nodes) {
      if (node.node === self || node.state !== "up") continue;
      for (const manifest of node.manifests ?? []) {
        const list = remote.get(manifest.name) ?? [];
        list.push({ name: manifest.name, node: node.node, host: { manifest, storage: null } });
        remote.set(manifest.name, list);
      }
    }
    this.remote = remote;
  }

  /** Finds the service and route for `METHOD /api/<service><path>`. */
  match(serviceName: string, method: string, path: string): RouteMatch {
    const service = this.instance(serviceName, false);
    if (!service) throw new PlinthError("PLT_SERVICE_NOT_FOUND", `no service "${serviceName}"`);
    let end = path.length;
    while (end > 1 && path.charCodeAt(end - 1) === 47 /* "/" */) end--;
    const normalized = end === path.length ? path : path.slice(0, end);
    const found = ("router" in service ? service.router : routerOf(service.host.manifest)).find(method, normalized);
    if (!found) throw new PlinthError("PLT_NOT_FOUND", `no route ${method} ${normalized} in service "${serviceName}"`);
    return { service, route: found.store, params: found.params };
  }

  /** The service loaded from the plugin entry file `path`, if any. */
  serviceAt(path: string): Service | undefined {
    return [...this.services.values()].find((s) => s.path === path);
  }

  /** The service a host serves, if it is in service (not by name: a replacement shares it). */
  serviceOf(host: WorkerHost): Service | undefined {
    for (const service of this.services.values()) if (service.host === host) return service;
    return undefined;
  }

  /**
   * Breaker settings for a target, lowest precedence first: the plugin's own (`breaker` on the
   * plugin or the action), then platform.config.ts (`breaker.services` / `breaker.actions`).
   */
  breakerOverrides(instanceTarget: string): BreakerOverride | undefined {
    // Another node's instance has a breaker of its own, `<service>@<node>`: it has its service's settings.
    const target = instanceTarget.replace(/@[^.]*/, "");
    const dot = target.indexOf(".");
    const manifest = this.services.get(dot < 0 ? target : target.slice(0, dot))?.host.manifest;
    const { services, actions } = this.config.breaker;
    if (dot < 0) return { ...manifest?.breaker, ...services[target] };
    const fromPlugin = manifest?.actionBreakers[target.slice(dot + 1)];
    const fromConfig = actions[target];
    return fromPlugin || fromConfig ? { ...fromPlugin, ...fromConfig } : undefined;
  }

  /** The state of every service and every plugin that failed to load. */
  describe(): NodeDescription {
    return describe(this);
  }

  reportFailure(origin: string, error: PlinthError): void {
    this.failures.push({ origin, error: error.toWire() });
    this.log.error("plugin failed to load", { plugin: origin, code: error.code, reason: error.message });
  }

  forgetFailures(origin: string): void {
    for (let i = this.failures.length - 1; i >= 0; i--) if (this.failures[i]!.origin === origin) this.failures.splice(i, 1);
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
}

/** `match`'s route in the version `serving` when it declares it with the same method, path and policy. */
export function sameRoute(match: RouteMatch, serving: Instance): RouteMatch | undefined {
  const was = match.service.host.manifest?.routes[match.route];
  const routes = serving.host.manifest?.routes;
  if (!was || !routes) return undefined;
  const route = routes.findIndex((r) => r.method === was.method && r.path === was.path && JSON.stringify(r.auth) === JSON.stringify(was.auth));
  return route < 0 ? undefined : { service: serving, route, params: match.params };
}

/** The routers of other nodes' manifests, built once per announcement. */
const remoteRouters = new WeakMap<Manifest, Memoirist<number>>();
function routerOf(manifest: Manifest): Memoirist<number> {
  let router = remoteRouters.get(manifest);
  if (!router) remoteRouters.set(manifest, (router = buildRouter(manifest)));
  return router;
}

export function buildRouter(manifest: Manifest): Memoirist<number> {
  const router = new Memoirist<number>();
  manifest.routes.forEach((r, i) => router.add(r.method, r.path, i));
  return router;
}
