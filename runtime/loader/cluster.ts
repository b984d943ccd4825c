/**
 * What a node does in a cluster once its services are up: serves other nodes' requests and reads of
 * its services' logs (bus/cluster/rpc.ts), says what it hosts and learns what the others host
 * (bus/cluster/presence.ts), fails at once what it asked of a node that is gone, and reads the logs of
 * the services only other nodes host for its own subscribers (follower.ts), woken by their events.
 */
import type { ClusterBus, ClusterConfig } from "../bus/cluster/bus";
import { Presence, type NodeInfo } from "../bus/cluster/presence";
import type { ClusterRpc } from "../bus/cluster/rpc";
import { PlinthError } from "../errors";
import type { Logger } from "../log";
import { Topics } from "../protocol";
import { READ_LIMIT, RemoteFollower } from "./follower";
import type { Loader } from "./loader";

export interface ClusterMember {
  /** Every node heard of, this one included. */
  nodes(): NodeInfo[];
  /** A clean stop: no more reads of other nodes' logs, and the others hear this node left. */
  leave(): Promise<void>;
}

export async function joinCluster(bus: ClusterBus, rpc: ClusterRpc, config: ClusterConfig, loader: Loader, gatewayUrl: string, log: Logger): Promise<ClusterMember> {
  const { registry } = loader;
  await rpc.start(bus, (name, message, timeoutMs) => {
    const service = registry.services.get(name);
    if (!service) return Promise.reject(new PlinthError("PLT_SERVICE_UNAVAILABLE", `no service "${name}" on node "${config.node}"`));
    if (message.t === "log") return Promise.resolve(registry.logs.read(name, message.after, Math.min(message.limit, READ_LIMIT)));
    return service.host.request(message, timeoutMs);
  });
  const manifests = () => [...registry.services.values()].flatMap((s) => (s.host.manifest ? [s.host.manifest] : []));
  const presence = new Presence(bus, config, () => ({ url: gatewayUrl, manifests: manifests() }), (nodes) => {
    registry.setRemote(nodes, config.node);
    for (const node of nodes) if (node.state !== "up") rpc.gone(node.node);
  });
  await presence.start();
  const follower = new RemoteFollower(registry, rpc, loader.config.calls.timeoutMs, log);
  await bus.subscribe(`${Topics.eventsRoot}/#`, (topic) => follower.heard(topic));
  follower.start();
  return {
    nodes: () => presence.list(),
    async leave() {
      follower.stop();
      await presence.leave();
    },
  };
}
