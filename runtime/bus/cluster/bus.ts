/**
 * The Bus on an outside MQTT broker (cluster mode): one MQTT.js connection per node. The runtime's
 * publishes and its in-process subscriptions go through it, and each plugin worker's committed events
 * are published on it at QoS 1, answered once the broker acknowledged them (PUBACK): what the broker
 * never acknowledged stays unsent in the outbox and is published again. The broker's own persistence is
 * not relied on: a node that reconnects serves its events ports again and republishes what is unsent.
 *
 * In-process handlers share one broker subscription per filter; messages are matched to them here.
 */
import { readFileSync } from "node:fs";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { QlobberTrue } from "qlobber";
import type { Config } from "../../../config/schema";
import { PlinthError } from "../../errors";
import type { Logger } from "../../log";
import { QLOBBER_OPTIONS } from "../../broker/persistence/filters";
import type { Bus, BusHandler } from "../bus";
import { serveEventPort } from "../event-port";

export type ClusterConfig = NonNullable<Config["cluster"]>;

/** Retained messages still arriving after a SUBACK for this long: clearRetained has seen them all. */
const RETAINED_QUIET_MS = 150;

export interface ClusterBus extends Bus {
  /** The MQTT.js client (presence publishes its will and its announcements on it). */
  readonly client: MqttClient;
  close(): Promise<void>;
}

/** Connects to the cluster's broker; rejects (PLT_LISTEN_FAILED naming cluster.url) when the first connection fails. */
export async function connectCluster(config: ClusterConfig, log: Logger, will?: IClientOptions["will"]): Promise<ClusterBus> {
  // Given as fields, not as the URL: MQTT.js would read a URL with the deprecated url.parse() (a warning on stderr).
  const url = new URL(config.url);
  const client = mqtt.connect({
    protocol: url.protocol === "mqtts:" ? "mqtts" : "mqtt",
    host: url.hostname,
    port: url.port ? Number(url.port) : url.protocol === "mqtts:" ? 8883 : 1883,
    clientId: `${config.prefix}-${config.node}`,
    clean: true,
    reconnectPeriod: 500,
    connectTimeout: 10_000,
    keepalive: 10,
    ...(config.username !== undefined ? { username: config.username } : {}),
    ...(config.password !== undefined ? { password: config.password } : {}),
    ...(config.ca ? { ca: readFileSync(config.ca) } : {}),
    ...(config.cert ? { cert: readFileSync(config.cert) } : {}),
    ...(config.key ? { key: readFileSync(config.key) } : {}),
    ...(will ? { will } : {}),
  });
  try {
    await new Promise<void>((resolve, reject) => {
      client.once("connect", () => resolve());
      client.once("error", reject);
      client.once("close", () => reject(new Error("connection closed")));
    });
  } catch (err) {
    client.end(true);
    throw new PlinthError("PLT_LISTEN_FAILED", `cluster.url: cannot connect to ${config.url}: ${(err as Error).message}`);
  }
  // Requests and answers are small and wait for each other: no Nagle delay on this connection (each one).
  const noDelay = () => (client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true);
  noDelay();
  client.on("connect", noDelay);
  client.removeAllListeners("error");
  client.on("error", (err) => log.warn("cluster broker error", { error: err.message }));
  return clusterBus(client, log);
}

function clusterBus(client: MqttClient, log: Logger): ClusterBus {
  const handlers = new Map<string, Set<BusHandler>>();
  const reconnectListeners: Array<() => void> = [];
  let connected = true;
  client.on("close", () => {
    if (connected) log.warn("cluster broker connection lost, reconnecting");
    connected = false;
  });
  client.on("connect", () => {
    if (connected) return;
    connected = true;
    log.info("cluster broker connection back");
    for (const listener of reconnectListeners) listener();
  });
  client.on("message", (topic, payload) => {
    for (const filter of handlers.keys()) {
      if (!matches(filter, topic)) continue;
      for (const handler of handlers.get(filter)!) {
        try {
          handler(topic, payload);
        } catch (err) {
          log.error("a bus subscriber failed", { topic, error: err instanceof Error ? err.message : String(err) });
        }
      }
    }
  });
  const matchers = new Map<string, QlobberTrue>();
  function matches(filter: string, topic: string): boolean {
    let m = matchers.get(filter);
    if (!m) matchers.set(filter, (m = new QlobberTrue(QLOBBER_OPTIONS).add(filter)));
    return m.test(topic) && !(topic.startsWith("$") && (filter.startsWith("#") || filter.startsWith("+")));
  }

  const send = (topic: string, payload: string, done: (err?: Error | null) => void) => client.publish(topic, payload, { qos: 1 }, (err) => done(err ?? null));

  return {
    client,
    publish(topic, payload, options = {}) {
      return client.publishAsync(topic, payload, { qos: options.qos ?? 1, retain: options.retain ?? false }).then(() => {});
    },
    async clearRetained(filter) {
      const seen = new Set<string>();
      const listener = (topic: string, payload: Buffer, packet: { retain?: boolean }) => {
        if (packet.retain && payload.length > 0 && matches(filter, topic)) seen.add(topic);
      };
      client.on("message", listener);
      try {
        await client.subscribeAsync(filter, { qos: 1 });
        // Retained messages come right after the SUBACK; once none came for a while, that was all.
        let count = -1;
        while (count !== seen.size) {
          count = seen.size;
          await Bun.sleep(RETAINED_QUIET_MS);
        }
        if (!handlers.has(filter)) await client.unsubscribeAsync(filter);
      } finally {
        client.off("message", listener);
      }
      await Promise.all([...seen].map((topic) => client.publishAsync(topic, Buffer.alloc(0), { qos: 1, retain: true })));
      return seen.size;
    },
    async subscribe(filter, handler) {
      let set = handlers.get(filter);
      if (!set) {
        handlers.set(filter, (set = new Set()));
        // QoS 1 at most: what is published at QoS 0 (requests between nodes) still comes at QoS 0.
        await client.subscribeAsync(filter, { qos: 1 });
      }
      set.add(handler);
      return async () => {
        set!.delete(handler);
        if (set!.size > 0 || handlers.get(filter) !== set) return;
        handlers.delete(filter);
        await client.unsubscribeAsync(filter).catch(() => {});
      };
    },
    serveEvents: (port, service, generation) => serveEventPort(send, port, service, generation, log),
    onReconnect(listener) {
      reconnectListeners.push(listener);
    },
    close: () => client.endAsync(),
  };
}
