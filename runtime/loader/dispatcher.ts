/**
 * HTTP requests and calls to services, each through the target's bulkhead and breaker, over a
 * Transport: to the node's own workers, and in a cluster to the services other nodes host.
 */
import { parseTarget, type Breakers, type Report } from "../breaker/call";
import type { Identity } from "../auth/identity";
import { PlinthError } from "../errors";
import type { HttpRequest, HttpResponse } from "../worker/channel";
import type { HostRequest } from "../worker/host";
import type { LogRead } from "../bus/cluster/rpc";
import { nodeAction } from "./node";
import { sameRoute, type Registry } from "./registry";
import type { Instance, RouteMatch } from "./service";

/** Carries a request to an instance of a service and its answer back. */
export interface Transport {
  request(service: Instance, message: HostRequest, timeoutMs: number, report?: Report): Promise<unknown>;
}

/** What asks a service on another node (bus/cluster/rpc.ts): a request for it, or a read of its log. */
export interface RemoteRequests {
  request(node: string, service: string, message: HostRequest | LogRead, timeoutMs: number, report?: Report): Promise<unknown>;
}

/** The service's worker on this node; another node's service through `remote` (in a cluster). */
export function transportOver(remote?: RemoteRequests): Transport {
  return {
    request(service, message, timeoutMs, report) {
      if ("node" in service) {
        if (remote) return remote.request(service.node, service.name, message, timeoutMs, report);
        const err = new PlinthError("PLT_SERVICE_UNAVAILABLE", `${service.name} runs on another node and this one is not in a cluster`);
        report?.(err);
        return Promise.reject(err);
      }
      return service.host.request(message, timeoutMs, report);
    },
  };
}

export class Dispatcher {
  constructor(
    private readonly registry: Registry,
    private readonly breakers: Breakers,
    private readonly transport: Transport = transportOver(),
  ) {}

  /** Gateway → service, through the target's bulkhead and breaker. */
  http(match: RouteMatch, req: Omit<HttpRequest, "route" | "params">, timeoutMs: number): Promise<HttpResponse> {
    const name = match.service.name;
    const chosen = this.pick(name) ?? match.service;
    const attempt = (report?: Report) => {
      // Another node's instance as chosen; here, whichever version serves the name by then (a request
      // the bulkhead queued), when it has the same route under the same policy (the gateway checked the
      // caller against the matched one).
      const serving = "node" in chosen ? chosen : (this.registry.services.get(name) ?? chosen);
      const to = serving !== match.service ? sameRoute(match, serving) ?? match : match;
      return this.transport.request(to.service, { t: "http", req: { ...req, route: to.route, params: to.params } }, timeoutMs, report);
    };
    return this.breakers.guardReported(breakerOf(chosen), attempt, undefined, req.deadline) as Promise<HttpResponse>;
  }

  /**
   * The instance of `name` whose turn it is; in a cluster, passing over instances whose breaker refuses
   * while another's admits (a failing node is cut off, the others keep serving).
   */
  private pick(name: string, action = ""): Instance | undefined {
    const count = this.registry.instances(name).length;
    let instance = this.registry.instance(name);
    for (let tried = 1; instance && tried < count && this.breakers.admits(breakerOf(instance), action); tried++) instance = this.registry.instance(name);
    return instance;
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
      const service = this.pick(name, action);
      if (!service) throw new PlinthError("PLT_SERVICE_NOT_FOUND", `no service "${name}" (calling ${target})`);
      // One deadline for the whole chain: this call gets what is left of it, at most calls.timeoutMs.
      const { timeoutMs, retries, retryDelayMs } = this.registry.config.calls;
      const end = Math.min(deadline, Date.now() + timeoutMs);
      // The identity travels only when there is one (JSON leaves an undefined field out).
      const message: HostRequest = { t: "action", action, params, caller, deadline: end, identity: identity ?? undefined };
      const attempt = (report?: Report) => {
        const left = end - Date.now();
        // Another node's instance as chosen (its breaker guards it); here, a retry or a run the bulkhead
        // queued goes to whichever version serves the name by then.
        if (left > 0) return this.transport.request("node" in service ? service : (this.registry.services.get(name) ?? service), message, left, report);
        const late = new PlinthError("PLT_TIMEOUT", `deadline passed before calling ${target}`);
        report?.(late);
        return Promise.reject(late);
      };
      const breaker = breakerOf(service);
      if (!service.host.manifest?.idempotent.includes(action)) return this.breakers.guardReported(breaker, attempt, action, end);
      return this.breakers.guard(breaker, attempt, { retries, retryDelayMs, deadline: end }, action);
    } catch (err) {
      return Promise.reject(err);
    }
  }
}

/** An instance's breaker (and bulkhead): the service's own here, `<service>@<node>` for another node's. */
function breakerOf(instance: Instance): string {
  return "node" in instance ? `${instance.name}@${instance.node}` : instance.name;
}
