/**
 * The node's own view and actions (`$node.*`), for /health and the built-in
 * platform service (the only caller the loader lets through): services and their state,
 * breakers, event logs, dead letters.
 */
import type { Config } from "../../config/schema";
import type { Breakers } from "../breaker/call";
import { PlinthError } from "../errors";
import { Topics, routeName, toEnvelope } from "../protocol";
import type { NodeInfo } from "../bus/cluster/presence";
import type { EventLogSource } from "./logs";
import type { LoadFailure, Service } from "./service";

/** What these functions read from the loader. */
export interface NodeView {
  readonly services: ReadonlyMap<string, Service>;
  readonly failures: readonly LoadFailure[];
  readonly breakers: Breakers;
  readonly logs: Pick<EventLogSource, "read" | "generation">;
  readonly config: Readonly<Config>;
  /** The nodes of the cluster (this one alone without a cluster). */
  nodes(): NodeInfo[];
}

export function describe(node: NodeView) {
  const breakers = node.breakers.snapshot();
  return {
    services: [...node.services.values()].map((s) => ({
      name: s.name,
      version: s.host.manifest?.version,
      origin: s.origin,
      state: s.host.state,
      restarts: s.host.restarts,
      breaker: breakers[s.name]?.state ?? "closed",
      storage: s.host.storage,
      routes: s.host.manifest?.routes.map((r) => routeName(s.name, r)) ?? [],
      actions: s.host.manifest?.actions ?? [],
      subscriptions: s.host.manifest?.subscriptions ?? [],
      needs: s.host.manifest?.needs ?? [],
      ...(s.host.lastError ? { lastError: s.host.lastError } : {}),
    })),
    failed: node.failures.map((f) => ({ origin: f.origin, error: f.error })),
  };
}

export type NodeDescription = ReturnType<typeof describe>;

/** `$node.<action>`: services, breakers, nodes, events (a service's log), deadletters, redrive. */
export function nodeAction(node: NodeView, action: string, params: unknown): Promise<unknown> | unknown {
  const { service, letter, after = 0, limit = 100 } = (params ?? {}) as { service?: string; letter?: number; after?: number; limit?: number };
  const timeoutMs = node.config.calls.timeoutMs;
  const target = () => {
    const found = service === undefined ? undefined : node.services.get(service);
    if (!found) throw new PlinthError("PLT_SERVICE_NOT_FOUND", `no service "${service}"`);
    return found;
  };
  switch (action) {
    case "services":
      return describe(node);
    case "breakers":
      return node.breakers.snapshot();
    case "nodes":
      return node.nodes();
    case "deadletters":
      return target().host.request({ t: "deadletters" }, timeoutMs);
    case "events": {
      const name = target().name;
      return node.logs.read(name, after, limit).map((e) => ({ topic: Topics.event(name, e.type), ...toEnvelope(name, e, node.logs.generation(name)) }));
    }
    case "redrive":
      return target().host.request({ t: "redrive", letter: Number(letter) }, timeoutMs);
    default:
      throw new PlinthError("PLT_ACTION_NOT_FOUND", `$node has no action "${action}"`);
  }
}
