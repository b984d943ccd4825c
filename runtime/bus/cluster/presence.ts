/**
 * Which nodes make up the cluster, on the cluster's broker: each node keeps a retained announcement
 * on `<prefix>/nodes/<node>` (its gateway's URL and the services it hosts), published at start, within
 * a second of a change and every `cluster.announceMs`; its MQTT will replaces it with "gone" the moment the
 * broker loses the node (a kill -9 closes its socket; a silent node, after 1.5 keepalives), and a node
 * that stops cleanly says "left". Every node reads every announcement.
 */
import type { IClientOptions } from "mqtt";
import type { Manifest } from "../../protocol";
import type { ClusterBus, ClusterConfig } from "./bus";

export interface NodeInfo {
  node: string;
  state: "up" | "gone" | "left";
  /** The node's gateway, while it is up. */
  url?: string;
  services: string[];
  /** The manifests of the services it hosts (their routes, actions, policies): what another node routes by. */
  manifests?: Manifest[];
  /** When it last said so (ISO time). */
  at: string;
}

/** What this node says about itself. */
export type SelfDescription = () => { url?: string; manifests: Manifest[] };

/** How often what this node hosts is compared with what it last said. */
const CHANGES_MS = 1_000;

const topic = (config: ClusterConfig, node: string) => `${config.prefix}/nodes/${node}`;

/** The will the connection leaves with the broker: "gone", retained. */
export function presenceWill(config: ClusterConfig): NonNullable<IClientOptions["will"]> {
  const gone: NodeInfo = { node: config.node, state: "gone", services: [], at: new Date().toISOString() };
  return { topic: topic(config, config.node), payload: Buffer.from(JSON.stringify(gone)), qos: 1, retain: true };
}

export class Presence {
  private readonly nodes = new Map<string, NodeInfo>();
  private timer: Timer | null = null;
  private said = "";
  private unsubscribe: (() => Promise<void>) | null = null;

  constructor(
    private readonly bus: ClusterBus,
    private readonly config: ClusterConfig,
    private readonly self: SelfDescription,
    /** Told the nodes as they are after each announcement heard. */
    private readonly changed: (nodes: NodeInfo[]) => void = () => {},
  ) {}

  async start(): Promise<void> {
    this.unsubscribe = await this.bus.subscribe(`${this.config.prefix}/nodes/+`, (topic, payload) => this.heard(topic.slice(topic.lastIndexOf("/") + 1), payload));
    await this.announce(true);
    let last = performance.now();
    this.timer = setInterval(() => {
      const due = performance.now() - last >= this.config.announceMs;
      if (due) last = performance.now();
      void this.announce(due).catch(() => {});
    }, Math.min(CHANGES_MS, this.config.announceMs));
    // A reconnection replaced the retained "gone" the broker may have published meanwhile.
    this.bus.onReconnect(() => void this.announce(true).catch(() => {}));
  }

  /** Says what this node hosts now, if it changed (or always, with `force`). */
  async announce(force = false): Promise<void> {
    const { url, manifests } = this.self();
    const key = JSON.stringify({ url, manifests });
    if (!force && key === this.said) return;
    this.said = key;
    const services = manifests.map((m) => m.name).sort();
    const info: NodeInfo = { node: this.config.node, state: "up", ...(url ? { url } : {}), services, manifests, at: new Date().toISOString() };
    await this.bus.publish(topic(this.config, this.config.node), JSON.stringify(info), { qos: 1, retain: true });
  }

  /** Every node heard of, this one included, by name (without their manifests). */
  list(): NodeInfo[] {
    return [...this.nodes.values()].sort((a, b) => a.node.localeCompare(b.node)).map(({ manifests: _, ...info }) => info);
  }

  /** A clean stop: this node says it left. */
  async leave(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.unsubscribe?.();
    const left: NodeInfo = { node: this.config.node, state: "left", services: [], at: new Date().toISOString() };
    await this.bus.publish(topic(this.config, this.config.node), JSON.stringify(left), { qos: 1, retain: true }).catch(() => {});
  }

  /** An announcement on `node`'s topic: one that names another node is not believed. */
  private heard(node: string, payload: Buffer): void {
    let info: NodeInfo;
    try {
      info = JSON.parse(payload.toString()) as NodeInfo;
    } catch {
      return; // not an announcement: ignored
    }
    if (info?.node !== node || !["up", "gone", "left"].includes(info.state)) return;
    // The same manifests as the node's last announcement are the same objects: what is built from them
    // (routers) is kept, not rebuilt at every announcement.
    const previous = this.nodes.get(node);
    const manifests = Array.isArray(info.manifests) ? info.manifests.filter(isManifest) : [];
    const same = previous?.manifests && JSON.stringify(previous.manifests) === JSON.stringify(manifests);
    this.nodes.set(info.node, {
      node: info.node,
      state: info.state,
      ...(typeof info.url === "string" ? { url: info.url } : {}),
      services: Array.isArray(info.services) ? info.services.filter((s) => typeof s === "string") : [],
      manifests: same ? previous.manifests : manifests,
      at: String(info.at),
    });
    this.changed([...this.nodes.values()]);
  }
}

/** Enough of a manifest to route by (another node's announcement is read as untrusted). */
function isManifest(m: unknown): m is Manifest {
  const x = m as Manifest;
  return typeof x === "object" && x !== null && typeof x.name === "string" && Array.isArray(x.routes) && Array.isArray(x.actions) && Array.isArray(x.idempotent) && typeof x.actionBreakers === "object";
}
