/**
 * Inside the broker's thread: aedes with its TCP and TLS listeners, its SQLite store, its ACL and
 * its `$SYS`, and the Bus on it (local.ts). The main thread reaches it through messages.ts: requests
 * answered by "done", plugin workers' events ports served here (events go from a plugin's worker to
 * this thread without the main thread), and the gateway's MQTT-over-WebSocket connections relayed a
 * frame at a time (relay.ts).
 */
import { join } from "node:path";
import { Authenticator } from "../../auth/authenticator";
import { startBroker, type Broker } from "../../broker/broker";
import { BROKER_DB_FILE } from "../../broker/persistence";
import { SocketStream } from "../../broker/stream";
import { PlinthError } from "../../errors";
import { LogLevels, type Fields, type Logger, type LogLevel } from "../../log";
import { storeHealth } from "../../storage/faults";
import { storeOptions } from "../../storage/open";
import type { Bus } from "../bus";
import { localBus } from "../local";
import type { FromBroker, ToBroker } from "./messages";
import { RelayedWire } from "./relay";

declare const self: Worker;

const post = (message: FromBroker, transfer?: ArrayBuffer[]) => self.postMessage(message, transfer ?? []);

/** A logger whose lines are written by the main thread's logger, under `path`. */
function remoteLogger(level: LogLevel, path: string[] = []): Logger {
  const at = (l: Exclude<LogLevel, "silent">) => (msg: string, fields?: Fields) => {
    if (LogLevels[l] >= LogLevels[level]) post({ t: "log", path, level: l, msg, fields: fields && plain(fields) });
  };
  return { level, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error"), child: (name) => remoteLogger(level, [...path, name]) };
}

/** Fields as structured clone takes them (an Error keeps its message). */
function plain(fields: Fields): Fields {
  const out: Fields = {};
  for (const [k, v] of Object.entries(fields)) out[k] = v instanceof Error ? v.message : typeof v === "function" ? String(v) : v;
  return out;
}

let broker: Broker | null = null;
let bus: Bus | null = null;
let auth: Authenticator | null = null;
const subscriptions = new Map<number, () => Promise<void>>();
const served = new Map<number, () => void>();
const sockets = new Map<number, { wire: RelayedWire; stream: SocketStream }>();
/** What arrives before the broker is up waits for it. */
let waiting: Array<MessageEvent<ToBroker>> | null = [];

async function start(message: Extract<ToBroker, { t: "start" }>): Promise<void> {
  const { config } = message;
  const log = remoteLogger(config.log.level);
  try {
    auth = await Authenticator.create(config);
    broker = await startBroker(config.broker, log.child("broker"), {
      access: { auth, config: config.auth.mqtt },
      dataDir: config.data.dir,
      store: storeOptions(config.data),
    });
  } catch (err) {
    auth?.close();
    const e = err instanceof PlinthError ? err : new PlinthError("PLT_INTERNAL", err instanceof Error ? err.message : String(err));
    post({ t: "failed", code: e.code, message: e.message });
    return;
  }
  bus = localBus(broker.aedes, log.child("bus"));
  if (config.broker.persistence === "sqlite") {
    storeHealth(join(config.data.dir, BROKER_DB_FILE)).listen((fault) => post({ t: "storage", fault }));
  }
  post({ t: "ready", port: broker.port, tlsPort: broker.tlsPort, websocketPort: broker.websocketPort });
  const queued = waiting ?? [];
  waiting = null;
  for (const e of queued) handle(e);
}

/** Answers request `id` once `work` settles. */
function answer(id: number, work: Promise<number | void>): void {
  work.then(
    (value) => post(typeof value === "number" ? { t: "done", id, value } : { t: "done", id }),
    (err) => post({ t: "done", id, error: err instanceof Error ? err.message : String(err) }),
  );
}

function handle(e: MessageEvent<ToBroker>): void {
  const m = e.data;
  if (m.t === "ping") return post({ t: "pong" });
  if (waiting && m.t !== "start" && m.t !== "close") return void waiting.push(e);
  switch (m.t) {
    case "start":
      return void start(m);
    case "publish":
      return answer(m.id, bus!.publish(m.topic, typeof m.payload === "string" ? m.payload : Buffer.from(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength), { qos: m.qos, retain: m.retain }));
    case "clear":
      return answer(m.id, bus!.clearRetained(m.filter));
    case "subscribe":
      return answer(
        m.id,
        bus!.subscribe(m.filter, (topic, payload) => post({ t: "message", subscription: m.id, topic, payload: new Uint8Array(payload) })).then((stop) => void subscriptions.set(m.id, stop)),
      );
    case "unsubscribe": {
      const stop = subscriptions.get(m.subscription);
      subscriptions.delete(m.subscription);
      return answer(m.id, stop ? stop() : Promise.resolve());
    }
    case "serve": {
      const port = e.ports[0];
      if (port) served.set(m.id, bus!.serveEvents(port, m.service, m.generation));
      return;
    }
    case "unserve":
      served.get(m.id)?.();
      served.delete(m.id);
      return;
    case "ws-open": {
      const wire = new RelayedWire(m.id, post);
      const stream = new SocketStream(wire);
      sockets.set(m.id, { wire, stream });
      stream.once("close", () => sockets.delete(m.id));
      return broker!.handle(stream);
    }
    case "ws-data":
      return sockets.get(m.id)?.stream.received(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength));
    case "ws-blocked":
      return sockets.get(m.id)?.wire.block();
    case "ws-drained": {
      const socket = sockets.get(m.id);
      socket?.wire.unblock();
      return socket?.stream.drained();
    }
    case "ws-closed": {
      const socket = sockets.get(m.id);
      if (!socket) return;
      sockets.delete(m.id);
      socket.wire.closed();
      if (!socket.stream.readableEnded) socket.stream.push(null);
      return void socket.stream.destroy();
    }
    case "close":
      return void close();
  }
}

async function close(): Promise<void> {
  waiting = null;
  for (const stop of served.values()) stop();
  served.clear();
  await broker?.close();
  auth?.close();
  post({ t: "closed" });
}

self.onmessage = handle;
