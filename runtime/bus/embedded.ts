/**
 * The embedded broker as the platform sees it: its Bus, the ports it listens on, and the gateway's
 * WebSocket handler for MQTT over WebSocket. By default the broker runs in a thread of its own
 * (thread/), supervised like a plugin's worker: if the thread dies, the gateway keeps answering, the
 * thread is started again on the same ports from its SQLite store, and the Bus's users hear
 * `onReconnect` (plugins' events ports are served again, and what they had not had acknowledged is
 * published again). `thread: false` runs aedes on the calling thread instead, as `local`.
 */
import type { WebSocketHandler } from "bun";
import { join } from "node:path";
import type { Config } from "../../config/schema";
import { startBroker, type Broker } from "../broker/broker";
import { BROKER_DB_FILE } from "../broker/persistence";
import { mqttWebSocketHandler, type MqttSocketData } from "../broker/ws";
import { Authenticator } from "../auth/authenticator";
import type { Logger } from "../log";
import { storeHealth } from "../storage/faults";
import { storeOptions } from "../storage/open";
import type { Bus } from "./bus";
import { localBus } from "./local";
import { BrokerThread } from "./thread/supervisor";
import type { RelayedSocketData } from "./thread/relay";

export type BrokerSocketData = MqttSocketData & RelayedSocketData;

export interface EmbeddedBroker {
  readonly bus: Bus;
  /** The TCP port bound (differs from config when it asked for 0); kept across restarts of the thread. */
  readonly port: number;
  readonly tlsPort: number | null;
  /** The port of MQTT over WebSocket when it has one of its own (`broker.websocketPort`); null: the gateway's. */
  readonly websocketPort: number | null;
  /** The broker, when it runs on this thread (`thread: false`); null when it has a thread of its own. */
  readonly local: Broker | null;
  /** MQTT over WebSocket, for the gateway's port (unless it has a port of its own). */
  readonly websocket: WebSocketHandler<BrokerSocketData>;
  /** Ends the broker's thread at once, as a fatal fault in it would (it is restarted); no-op on this thread. */
  kill(): void;
  close(): Promise<void>;
}

export async function startEmbeddedBroker(config: Readonly<Config>, log: Logger, options: { thread?: boolean } = {}): Promise<EmbeddedBroker> {
  if (options.thread ?? true) {
    // The broker's store reports its health in the broker's thread; this thread's copy is what /health reads.
    const health = config.broker.persistence === "sqlite" ? storeHealth(join(config.data.dir, BROKER_DB_FILE)) : null;
    const thread = new BrokerThread(config, log, (fault) => health?.mirror(fault));
    await thread.start();
    return thread;
  }
  const auth = await Authenticator.create(config);
  let broker: Broker;
  try {
    broker = await startBroker(config.broker, log.child("broker"), {
      access: { auth, config: config.auth.mqtt },
      dataDir: config.data.dir,
      store: storeOptions(config.data),
    });
  } catch (err) {
    auth.close();
    throw err;
  }
  return {
    bus: localBus(broker.aedes, log.child("bus")),
    port: broker.port,
    tlsPort: broker.tlsPort,
    websocketPort: broker.websocketPort,
    local: broker,
    websocket: mqttWebSocketHandler((stream) => broker.handle(stream)),
    kill() {},
    async close() {
      await broker.close();
      auth.close();
    },
  };
}
