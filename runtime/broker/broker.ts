/**
 * The embedded MQTT broker: aedes, listening on TCP; WebSocket connections are
 * handed over by the gateway (see ws.ts). start() resolves once listening.
 */
import { createServer, type Server as NetServer, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { Aedes } from "aedes";
import type { Config } from "../../config/schema";
import { PlinthError } from "../errors";
import type { Logger } from "../log";
import { aclHooks, type MqttAccess } from "./acl";
import { conformant } from "./conformance";
import { createBus, type Bus } from "./bus";
import { openPersistence } from "./persistence";

export interface Broker {
  readonly aedes: Aedes;
  readonly bus: Bus;
  /** The TCP port actually bound (differs from config when it asked for 0). */
  readonly port: number;
  /** Hands a connection (e.g. a WebSocket stream) to the broker. */
  handle(stream: Duplex): void;
  close(): Promise<void>;
}

export interface BrokerOptions {
  /** Authentication and topic ACLs for clients (none: anyone may connect). */
  access?: MqttAccess | null;
  /** The data folder (`data.dir`): with `broker.persistence: "sqlite"` the broker's state is kept there. */
  dataDir?: string;
}

export async function startBroker(config: Config["broker"], log: Logger, options: BrokerOptions = {}): Promise<Broker> {
  const persistence = openPersistence(config, options.dataDir);
  const aedes = await Aedes.createBroker({ ...aclHooks(log, options.access), persistence }).catch(async (err) => {
    await persistence?.destroy();
    throw err;
  });
  conformant(aedes, config, log);
  aedes.on("clientError", (client, err) => log.debug("client error", { client: client.id, error: err.message }));
  aedes.on("connectionError", (client, err) => log.debug("connection error", { client: client?.id, error: err.message }));

  const server: NetServer = createServer((socket: Socket) => {
    socket.setNoDelay(true);
    aedes.handle(socket);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(config.port, config.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    await persistence?.destroy();
    throw listenFailed("broker.port", config.host, config.port, err);
  }
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : config.port;
  log.info("broker listening", { url: `mqtt://${config.host}:${port}` });

  return {
    aedes,
    bus: createBus(aedes, (err, topic) => log.error("bus subscriber threw", { topic, error: err instanceof Error ? err.message : String(err) })),
    port,
    handle: (stream) => aedes.handle(stream),
    async close() {
      // aedes first: it disconnects the clients, which lets the TCP server close.
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await persistence?.destroy();
    },
  };
}

/** A port that cannot be bound, named by its config field. */
export function listenFailed(field: string, host: string, port: number, err: unknown): PlinthError {
  const code = (err as { code?: string }).code;
  const reason = code === "EADDRINUSE" ? "address already in use" : code === "EACCES" ? "permission denied" : (err as Error).message;
  return new PlinthError("PLT_LISTEN_FAILED", `${field}: cannot listen on ${host}:${port}: ${reason}`, { cause: err });
}
