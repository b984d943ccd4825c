/**
 * Broker statistics on `$SYS/broker/...` (mosquitto's names where it has one),
 * published retained (QoS 0) through aedes every `broker.sysIntervalMs`, and
 * once at start. Clients may subscribe; their publishes there are acknowledged and dropped (acl.ts).
 *
 * aedes publishes its own `$SYS/<broker id>/...` topics (heartbeat, birth,
 * new/clients, new/subscribes...) and listens on some of them; `broker` is
 * never an aedes id (those are UUIDs), so the two sets do not meet. Those carry
 * other clients' ids and subscriptions: they are never forwarded to a client
 * (acl.ts, isBrokerInternal), only aedes' own listeners get them.
 */
import type { Aedes } from "aedes";
import type { TransportStats } from "./stream";

export const SYS_ROOT = "$SYS/broker";

/** Moving averages over 1, 5 and 15 minutes, per minute (as mosquitto's `load/...` topics). */
const WINDOWS = [
  ["1min", 60_000],
  ["5min", 300_000],
  ["15min", 900_000],
] as const;

export interface SysOptions {
  intervalMs: number;
  version: string;
  /** The transports' counters (TCP, TLS and WebSocket), connections refused at `maxConnections` among them. */
  stats: TransportStats;
  /** QoS 1/2 messages dropped from persistent sessions' full queues (`broker.maxQueuedPerClient`). */
  storeDropped?: () => number;
  now?: () => number;
}

export interface Sys {
  /** Messages received from clients (PUBLISH packets), since start. */
  readonly received: number;
  /** Publishes the current values now. */
  publish(): void;
  stop(): void;
}

type Counter = "received" | "sent" | "bytesReceived" | "bytesSent";

export function startSys(aedes: Aedes, options: SysOptions): Sys {
  const now = options.now ?? Date.now;
  const stats = options.stats;
  const started = now();
  let received = 0;
  const onPublish = (_packet: unknown, client: unknown) => {
    if (client) received++;
  };
  aedes.on("publish", onPublish);

  const read: Record<Counter, () => number> = {
    received: () => received,
    sent: () => stats.publishSent,
    bytesReceived: () => stats.bytesReceived,
    bytesSent: () => stats.bytesSent,
  };
  const last = { at: started, values: { received: 0, sent: 0, bytesReceived: 0, bytesSent: 0 } as Record<Counter, number> };
  const averages = Object.fromEntries(
    (Object.keys(read) as Counter[]).map((k) => [k, Object.fromEntries(WINDOWS.map(([name]) => [name, 0]))]),
  ) as Record<Counter, Record<string, number>>;

  const send = (topic: string, value: string | number) =>
    aedes.publish({ cmd: "publish", topic: `${SYS_ROOT}/${topic}`, payload: Buffer.from(String(value)), qos: 0, retain: true, dup: false }, () => {});

  function publish(): void {
    const at = now();
    const elapsed = at - last.at;
    if (elapsed > 0) {
      for (const k of Object.keys(read) as Counter[]) {
        const value = read[k]();
        const perMinute = ((value - last.values[k]) / elapsed) * 60_000;
        for (const [name, window] of WINDOWS) {
          const avg = averages[k];
          avg[name] = avg[name]! + (perMinute - avg[name]!) * (1 - Math.exp(-elapsed / window));
        }
        last.values[k] = value;
      }
      last.at = at;
    }
    send("version", `plinth ${options.version}`);
    send("uptime", `${Math.floor((at - started) / 1000)} seconds`);
    send("clients/connected", aedes.connectedClients);
    send("clients/rejected", stats.rejected);
    send("clients/slow", stats.slowConsumers);
    send("messages/received", received);
    send("messages/sent", stats.publishSent);
    send("messages/dropped", stats.droppedQos0);
    send("store/messages/dropped", options.storeDropped?.() ?? 0);
    send("bytes/received", stats.bytesReceived);
    send("bytes/sent", stats.bytesSent);
    const loads: Array<[string, Counter]> = [
      ["messages/received", "received"],
      ["messages/sent", "sent"],
      ["bytes/received", "bytesReceived"],
      ["bytes/sent", "bytesSent"],
    ];
    for (const [topic, k] of loads) for (const [name] of WINDOWS) send(`load/${topic}/${name}`, averages[k][name]!.toFixed(2));
  }

  publish();
  const timer = options.intervalMs > 0 ? setInterval(publish, options.intervalMs) : null;
  timer?.unref();
  return {
    get received() {
      return received;
    },
    publish,
    stop() {
      if (timer) clearInterval(timer);
      aedes.off("publish", onPublish);
    },
  };
}
