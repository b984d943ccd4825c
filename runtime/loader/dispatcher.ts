/**
 * HTTP requests and calls to services, each through the target's bulkhead and breaker, over a
 * Transport: the node's own workers today (`localTransport`), instances on other nodes in a cluster.
 */
import { parseTarget, type Breakers, type Report } from "../breaker/call";
import type { Identity } from "../auth/identity";
import { PlinthError } from "../errors";
import type { HttpRequest, HttpResponse } from "../worker/channel";
import type { HostRequest } from "../worker/host";
import { nodeAction } from "./node";
import { sameRoute, type Registry } from "./registry";
import type { RouteMatch, Service } from "./service";

/** Carries a request to an instance of a service and its answer back. */
export interface Transport {
  request(service: Service, message: HostRequest, timeoutMs: number, report?: Report): Promise<unknown>;
}

/** The service's worker on this node. */
export const localTransport: Transport = {
  request: (service, message, timeoutMs, report) => service.host.request(message, timeoutMs, report),
};

export class Dispatcher {
  constructor(
    private readonly registry: Registry,
    private readonly breakers: Breakers,
    private readonly transport: Transport = localTransport,
  ) {}

  /** Gateway → service, through the target's bulkhead and breaker. */
  http(match: RouteMatch, req: Omit<HttpRequest, "route" | "params">, timeoutMs: number): Promise<HttpResponse> {
    const name = match.service.name;
    const attempt = (report?: Report) => {
      // A request the bulkhead queued goes to whichever version serves the name by then, when that
      // version has the same route under the same policy (the gateway checked the caller against it).
      const serving = this.registry.services.get(name);
      const to = serving && serving !== match.service ? sameRoute(match, serving) ?? match : match;
      return this.transport.request(to.service, { t: "http", req: { ...req, route: to.route, params: to.params } }, timeoutMs, report);
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
        if (!node) throw new PlinthError("PLT_FORBIDDEN", `${target} is reserved for the node's built-in platform service`);
        return Promise.resolve(nodeAction(this.registry, action, params));
      }
      const services = this.registry.services;
      const service = services.get(name);
      if (!service) throw new PlinthError("PLT_SERVICE_NOT_FOUND", `no service "${name}" (calling ${target})`);
      // One deadline for the whole chain: this call gets what is left of it, at most calls.timeoutMs.
      const { timeoutMs, retries, retryDelayMs } = this.registry.config.calls;
      const end = Math.min(deadline, Date.now() + timeoutMs);
      // The identity travels only when there is one (JSON leaves an undefined field out).
      const message: HostRequest = { t: "action", action, params, caller, deadline: end, identity: identity ?? undefined };
      const attempt = (report?: Report) => {
        const left = end - Date.now();
        // A retry, or a run the bulkhead queued, goes to whichever version serves the name by then.
        if (left > 0) return this.transport.request(services.get(name) ?? service, message, left, report);
        const late = new PlinthError("PLT_TIMEOUT", `deadline passed before calling ${target}`);
        report?.(late);
        return Promise.reject(late);
      };
      if (!service.host.manifest?.idempotent.includes(action)) return this.breakers.guardReported(name, attempt, action, end);
      return this.breakers.guard(name, attempt, { retries, retryDelayMs, deadline: end }, action);
    } catch (err) {
      return Promise.reject(err);
    }
  }
}
