/**
 * The embedded MQTT broker: aedes, listening on TCP (and TLS) through Bun's
 * native sockets (tcp.ts); WebSocket connections are handed over by the gateway
 * (see ws.ts). Both reach aedes as stream.ts's SocketStream, with the same bound
 * on each client's queue. Statistics on `$SYS/broker/...` (sys.ts). start() resolves once listening.
 * aedes delivers through emitter.ts's Emitter (its queue drains in a loop), not mqemitter.
 */
import { readFileSync } from "node:fs";
import { X509Certificate, createPrivateKey } from "node:crypto";
import type { Duplex } from "node:stream";
import { Aedes } from "aedes";
import type { Config } from "../../config/schema";
import { PlinthError } from "../errors";
import type { Logger } from "../log";
import { aclHooks, type MqttAccess } from "./acl";
import { conformant } from "./conformance";
import { Emitter } from "./emitter";
import { openPersistence } from "./persistence";
import { SocketStream, transportStats, type TransportStats } from "./stream";
import { startSys } from "./sys";
import { listenMqtt, type Gate } from "./tcp";
import { listenWebSocket } from "./ws";
import type { StoreOptions } from "../storage/open";
import { VERSION } from "../version";

/** Messages aedes delivers at once (its default); more wait in the emitter's queue. */
const CONCURRENCY = 100;

export interface Broker {
  readonly aedes: Aedes;
  /** The TCP port actually bound (differs from config when it asked for 0). */
  readonly port: number;
  /** The TLS port actually bound, when `broker.tls` is set. */
  readonly tlsPort: number | null;
  /** The port of MQTT over WebSocket, when `broker.websocketPort` is set (else it is the gateway's). */
  readonly websocketPort: number | null;
  /** Transport counters: bytes, messages sent, QoS 0 dropped, slow consumers, refused connections. */
  readonly stats: TransportStats;
  /** Hands a connection (e.g. a WebSocket stream) to the broker. */
  handle(stream: Duplex): void;
  close(): Promise<void>;
}

export interface BrokerOptions {
  /** Authentication and topic ACLs for clients (none: anyone may connect). */
  access?: MqttAccess | null;
  /** The data folder (`data.dir`): with `broker.persistence: "sqlite"` the broker's state is kept there. */
  dataDir?: string;
  /** How the broker's database is opened (durability, checkpoints). */
  store?: StoreOptions;
}

export async function startBroker(config: Config["broker"], log: Logger, options: BrokerOptions = {}): Promise<Broker> {
  const persistence = openPersistence(config, options.dataDir, options.store, log);
  // Our emitter in place of mqemitter: a long queue of messages drains in a loop, not in nested calls (emitter.ts).
  const mq = new Emitter({ concurrency: CONCURRENCY, onError: (err, topic) => log.error("a subscriber failed on a message", { topic, error: err instanceof Error ? err.message : String(err) }) });
  persistence.onSubscribed = mq.clock.tick;
  const aedes = await Aedes.createBroker({ ...aclHooks(log, options.access), persistence, mq, concurrency: CONCURRENCY }).catch(async (err) => {
    await persistence.destroy();
    throw err;
  });
  conformant(aedes, config, log);
  skipCleanSessionAcks(aedes);
  aedes.on("clientError", (client, err) => log.debug("client error", { client: client.id, error: err.message }));
  aedes.on("connectionError", (client, err) => log.debug("connection error", { client: client?.id, error: err.message }));

  const stats = transportStats();
  const gate = connectionGate(config.maxConnections);
  const transport = { hostname: config.host, maxQueuedBytes: config.maxQueuedBytesPerClient, stats, gate };
  const listeners: Array<{ stop(closeActive?: boolean): void }> = [];
  const abort = async (err: PlinthError) => {
    for (const l of listeners) l.stop(true);
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    await persistence.destroy();
    return err;
  };
  let tls: { cert: string; key: string } | null = null;
  try {
    if (config.tls) tls = readTls(config.tls);
  } catch (err) {
    throw await abort(err as PlinthError);
  }
  let port: number;
  let tlsPort: number | null = null;
  try {
    const server = listenMqtt({ ...transport, port: config.port }, (stream) => aedes.handle(stream));
    listeners.push(server);
    port = server.port;
  } catch (err) {
    throw await abort(listenFailed("broker.port", config.host, config.port, err));
  }
  if (config.tls && tls) {
    try {
      const server = listenMqtt({ ...transport, port: config.tls.port, tls }, (stream) => aedes.handle(stream));
      listeners.push(server);
      tlsPort = server.port;
    } catch (err) {
      throw await abort(listenFailed("broker.tls.port", config.host, config.tls.port, err));
    }
  }
  const handle = (stream: Duplex) => {
    if (!gate.admit()) return refuse(stream, stats);
    stream.once("close", () => gate.release());
    // A WebSocket's stream, made by the gateway: bounded and counted like a TCP one.
    if (stream instanceof SocketStream) stream.limit(transport.maxQueuedBytes, stats);
    aedes.handle(stream);
  };
  let websocketPort: number | null = null;
  if (config.websocketPort !== undefined && config.websocketPath) {
    try {
      const server = listenWebSocket(config.host, config.websocketPort, config.websocketPath, handle);
      listeners.push(server);
      websocketPort = server.port ?? config.websocketPort;
    } catch (err) {
      throw await abort(listenFailed("broker.websocketPort", config.host, config.websocketPort, err));
    }
  }
  log.info("broker listening", {
    url: `mqtt://${config.host}:${port}`,
    ...(tlsPort !== null ? { tls: `mqtts://${config.host}:${tlsPort}` } : {}),
    ...(websocketPort !== null ? { websocket: `ws://${config.host}:${websocketPort}${config.websocketPath}` } : {}),
  });
  const storeDropped = () => persistence.droppedMessages();
  const sys = config.sysIntervalMs > 0 ? startSys(aedes, { intervalMs: config.sysIntervalMs, version: VERSION, stats, storeDropped }) : null;

  return {
    aedes,
    port,
    tlsPort,
    websocketPort,
    stats,
    handle,
    async close() {
      sys?.stop();
      // aedes first: it disconnects the clients; then the listeners close what is left.
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      for (const l of listeners) l.stop(true);
      await persistence.destroy();
    },
  };
}

/** A port that cannot be bound, named by its config field. */
export function listenFailed(field: string, host: string, port: number, err: unknown): PlinthError {
  const code = (err as { code?: string }).code;
  const reason = code === "EADDRINUSE" ? "address already in use" : code === "EACCES" ? "permission denied" : (err as Error).message;
  return new PlinthError("PLT_LISTEN_FAILED", `${field}: cannot listen on ${host}:${port}: ${reason}`, { cause: err });
}

/**
 * A clean session's QoS 1/2 deliveries are never stored (aedes writes them straight out, and stores
 * no PUBREL for it), so its PUBACK or PUBCOMP has nothing to clear: the store is not asked (with the
 * SQLite store that was one query per acknowledged message, most of a QoS 1 delivery's cost). Clearing
 * a clean session's leftover queue at CONNECT passes the queued packets, not acks, and still goes to it.
 */
function skipCleanSessionAcks(aedes: Aedes): void {
  type Clear = (client: { clean?: boolean }, packet: { cmd?: string }) => Promise<unknown>;
  const persistence = (aedes as unknown as { persistence: { outgoingClearMessageId: Clear } }).persistence;
  const clear = persistence.outgoingClearMessageId.bind(persistence);
  persistence.outgoingClearMessageId = (client, packet) =>
    client.clean && (packet.cmd === "puback" || packet.cmd === "pubcomp") ? Promise.resolve(undefined) : clear(client, packet);
}

/** Counts MQTT connections against `broker.maxConnections` (0: no limit). */
function connectionGate(max: number): Gate {
  let open = 0;
  return {
    admit: () => (max > 0 && open >= max ? false : (open++, true)),
    release: () => void open--,
  };
}

/** A connection over the limit: its CONNECT is answered with CONNACK 3 "Server unavailable", then closed. */
function refuse(stream: Duplex, stats: TransportStats): void {
  stats.rejected++;
  const timer = setTimeout(() => stream.destroy(), 5_000);
  stream.once("data", () => {
    clearTimeout(timer);
    stream.end(Buffer.from([0x20, 0x02, 0x00, 0x03]));
  });
  stream.on("error", () => {});
}

/** Reads and checks the TLS files, naming the field that is wrong (PLT_CONFIG_INVALID). */
function readTls(tls: { cert: string; key: string }): { cert: string; key: string } {
  const read = (field: "cert" | "key", check: (pem: string) => unknown) => {
    const path = tls[field];
    let pem: string;
    try {
      pem = readFileSync(path, "utf8");
    } catch (err) {
      const reason = (err as { code?: string }).code === "ENOENT" ? "no such file" : (err as Error).message;
      throw new PlinthError("PLT_CONFIG_INVALID", `broker.tls.${field}: cannot read ${path}: ${reason}`, { cause: err });
    }
    try {
      check(pem);
    } catch (err) {
      throw new PlinthError("PLT_CONFIG_INVALID", `broker.tls.${field}: ${path} is not a PEM ${field === "cert" ? "certificate" : "private key"}: ${(err as Error).message}`, { cause: err });
    }
    return pem;
  };
  return { cert: read("cert", (pem) => new X509Certificate(pem)), key: read("key", (pem) => createPrivateKey(pem)) };
}
