/**
 * Takes the data folder's lock, then starts the parts: the plugins' workers first (they load on the other core),
 * the Bus meanwhile (the embedded broker's thread, runtime/bus/embedded.ts; or, with `cluster`, a connection to
 * the cluster's broker, runtime/bus/cluster/), then the plugins are put in service on the bus, then the WAL
 * checkpointer, the gateway and, in a cluster, this node's presence. Stops them in reverse: leave the
 * cluster, stop accepting HTTP, let in-flight requests finish, stop the workers (closing their databases),
 * then close the broker or the connection to it.
 */
import type { Config } from "../config/schema";
import { builtinServiceNames, nodeServiceName } from "../services/names";
import type { Clock } from "./breaker/clock";
import { Authenticator } from "./auth/authenticator";
import { Breakers } from "./breaker/call";
import type { Bus } from "./bus/bus";
import { connectCluster, type ClusterBus } from "./bus/cluster/bus";
import { presenceWill } from "./bus/cluster/presence";
import { ClusterRpc } from "./bus/cluster/rpc";
import { startEmbeddedBroker, type EmbeddedBroker } from "./bus/embedded";
import { ResponseCache } from "./gateway/cache";
import { createApp, startGateway, type Gateway } from "./gateway/gateway";
import { RateLimiter } from "./gateway/ratelimit";
import type { ApiPolicies } from "./gateway/routes";
import { transportOver } from "./loader/dispatcher";
import { joinCluster, type ClusterMember } from "./loader/cluster";
import { Loader } from "./loader/loader";
import { Reloader } from "./loader/reload";
import type { Logger } from "./log";
import { Topics } from "./protocol";
import { Checkpointer } from "./storage/checkpointer";
import { DataFolderLock } from "./storage/lock";

export interface Platform {
  readonly config: Readonly<Config>;
  /** The embedded broker; null in a cluster (the bus is the cluster's broker). */
  readonly broker: EmbeddedBroker | null;
  readonly bus: Bus;
  readonly loader: Loader;
  readonly gateway: Gateway;
  stop(): Promise<void>;
}

export interface PlatformOptions {
  /** Time for the circuit breakers (tests drive it by hand). */
  clock?: Clock;
  /** The broker in a thread of its own (the default), or on the main thread (tests that look inside aedes). */
  brokerThread?: boolean;
}

export async function startPlatform(config: Readonly<Config>, log: Logger, options: PlatformOptions = {}): Promise<Platform> {
  const started = performance.now();
  // Before any SQLite file is opened: one process per data folder.
  const lock = DataFolderLock.acquire(config.data.dir);
  let auth: Authenticator;
  try {
    auth = await Authenticator.create(config);
  } catch (err) {
    lock.release();
    throw err;
  }
  let broker: EmbeddedBroker | null = null;
  let cluster: ClusterBus | null = null;
  let member: ClusterMember | null = null;
  let bus: Bus | undefined;
  let checkpointer: Checkpointer | null = null;
  // In a cluster each node keeps its own breakers' states, under its own name.
  const breakerTopic = config.cluster ? (service: string) => `${config.cluster!.prefix}/breakers/${config.cluster!.node}/${service}` : Topics.breaker;
  const breakers = new Breakers(config.breaker, options.clock, onBreaker, config.bulkhead, (target) => loader.registry.breakerOverrides(target));
  function onBreaker(service: string, state: string, snapshot: object) {
    log.warn("circuit breaker", { service, state });
    bus?.publish(breakerTopic(service), JSON.stringify({ service, ...snapshot }), { retain: true }).catch(() => {});
  }
  // In a cluster, requests to services other nodes host go over the cluster's broker.
  const rpc = config.cluster ? new ClusterRpc(config.cluster, log.child("cluster")) : null;
  const loader = new Loader(config, breakers, log.child("loader"), {
    builtins: { names: builtinServiceNames, node: nodeServiceName },
    transport: transportOver(rpc ?? undefined),
    ...(config.cluster ? { nodes: () => member?.nodes() ?? [] } : {}),
  });
  /** What start-up opened, closed in reverse (the gateway and reloader, when up, are stopped first). */
  const close = async () => {
    await member?.leave();
    await loader.stop();
    await broker?.close();
    await cluster?.close();
    auth.close();
    await checkpointer?.stop();
    lock.release();
  };
  let gateway: Gateway;
  try {
    // The plugins' workers load and open their databases (on the other core) while this thread starts the broker.
    loader.startWorkers();
    if (config.cluster) {
      cluster = await connectCluster(config.cluster, log.child("cluster"), presenceWill(config.cluster));
      bus = cluster;
    } else {
      broker = await startEmbeddedBroker(config, log, { thread: options.brokerThread });
      bus = broker.bus;
    }
    // Breaker states retained by a previous run are not current: every breaker starts closed.
    await bus.clearRetained(breakerTopic("#"));
    await loader.start(bus);
    const policies: ApiPolicies = {
      auth,
      limiter: new RateLimiter(config.gateway.rateLimitKeys),
      cache: new ResponseCache(config.gateway.cache.maxEntries, config.gateway.cache.maxBytes),
      clientIp: (request) => gateway.clientIp(request),
    };
    // Writers (workers, the broker) never stop for a WAL checkpoint: a thread of its own does them.
    // Started once the plugins are ready, so that it does not compete with their workers for a core.
    if (config.data.checkpointMs > 0) checkpointer = new Checkpointer(config.data.dir, config.data.checkpointMs);
    gateway = startGateway(createApp(loader.upstream, config, log.child("gateway"), policies), broker?.websocket ?? null, config, log.child("gateway"));
    if (cluster && rpc) member = await joinCluster(cluster, rpc, config.cluster!, loader, gateway.url, log.child("cluster"));
  } catch (err) {
    await close();
    throw err;
  }
  const reloader = config.plugins.watch ? new Reloader(loader, config.plugins.dir, config.shutdown.graceMs, log.child("reload")) : null;
  reloader?.start();
  log.info("platform ready", { services: loader.registry.services.size, failed: loader.registry.failures.length, ms: Math.round(performance.now() - started), ...(config.cluster ? { cluster: config.cluster.url, node: config.cluster.node } : {}) });

  let stopping: Promise<void> | null = null;
  return {
    config,
    broker,
    bus,
    loader,
    gateway,
    stop() {
      stopping ??= (async () => {
        await reloader?.close();
        await gateway.stop(config.shutdown.graceMs);
        await close();
        log.info("platform stopped");
      })();
      return stopping;
    },
  };
}
