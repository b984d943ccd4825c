/**
 * MQTT over TCP (and TLS) on Bun's native sockets (`Bun.listen`), TCP_NODELAY. Each connection is
 * handed to aedes as a `SocketStream` (stream.ts: one buffer per turn, bounded outgoing queue, read
 * backpressure) over the Bun socket itself. A connection over `maxConnections` is answered CONNACK 3.
 */
import type { Duplex } from "node:stream";
import type { TCPSocketListener, TLSOptions } from "bun";
import { SocketStream, type TransportStats } from "./stream";

/** Admission of new connections (the broker's `maxConnections`, shared with WebSocket). */
export interface Gate {
  admit(): boolean;
  release(): void;
}

export interface MqttListenOptions {
  hostname: string;
  port: number;
  tls?: TLSOptions;
  /** Bytes queued for one client beyond which QoS 0 publishes to it are dropped; 0 = unbounded. */
  maxQueuedBytes: number;
  stats: TransportStats;
  gate: Gate;
}

/** CONNACK, return code 3 "Server unavailable" [MQTT-3.2.2-3] (aedes speaks MQTT 3.1 and 3.1.1). */
const SERVER_UNAVAILABLE = Buffer.from([0x20, 0x02, 0x00, 0x03]);

interface SocketData {
  stream: SocketStream | null;
  rejected: boolean;
}

/** Listens for MQTT connections and hands each to `handle` (aedes.handle) as a Duplex. */
export function listenMqtt(options: MqttListenOptions, handle: (stream: Duplex) => void): TCPSocketListener<SocketData> {
  const { stats, gate } = options;
  return Bun.listen<SocketData>({
    hostname: options.hostname,
    port: options.port,
    ...(options.tls ? { tls: options.tls } : {}),
    data: { stream: null, rejected: false },
    socket: {
      open(socket) {
        socket.data = { stream: null, rejected: false };
        if (!gate.admit()) {
          // Answered once its CONNECT has arrived (closing on unread data would reset the connection).
          stats.rejected++;
          socket.data.rejected = true;
          socket.timeout(5);
          return;
        }
        socket.setNoDelay(true);
        const stream = new SocketStream(socket, options.maxQueuedBytes, stats);
        socket.data.stream = stream;
        handle(stream);
      },
      data(socket, chunk) {
        if (socket.data.rejected) {
          socket.end(SERVER_UNAVAILABLE);
          return;
        }
        socket.data.stream?.received(chunk);
      },
      drain(socket) {
        socket.data.stream?.drained();
      },
      end(socket) {
        socket.data.stream?.push(null);
      },
      close(socket, error) {
        const stream = socket.data.stream;
        if (!stream) return;
        socket.data.stream = null;
        gate.release();
        if (!stream.readableEnded) stream.push(null);
        stream.destroy(error);
      },
      error(socket, error) {
        socket.data.stream?.destroy(error);
      },
    },
  });
}
