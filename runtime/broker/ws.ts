/**
 * MQTT over WebSocket on Bun's native WebSocket server (the gateway's port). Each connection is
 * handed to the broker as a `SocketStream` (stream.ts), the same as a TCP one, over the WebSocket
 * adapted to a `Wire`: one binary message per connection per turn, and the broker's bound on what
 * waits for a client (the broker applies it in `handle`).
 */
import type { Duplex } from "node:stream";
import type { Server, ServerWebSocket, WebSocketHandler } from "bun";
import { SocketStream, type Wire } from "./stream";

export interface MqttSocketData {
  stream?: SocketStream;
}

/**
 * A ServerWebSocket as a Wire. Bun takes a whole message per send, and holds what the socket did not
 * take (reporting -1) until it can, then calls `drain`. While Bun holds bytes nothing more is given
 * to it: the rest waits in the stream's queue and goes on `drain`. What Bun holds counts in the bound.
 */
export class WebSocketWire implements Wire {
  constructor(private readonly ws: Pick<ServerWebSocket<MqttSocketData>, "readyState" | "getBufferedAmount" | "sendBinary" | "close" | "pause" | "resume">) {}

  get readyState(): number {
    return this.ws.readyState;
  }

  write(data: Uint8Array): number {
    if (this.ws.readyState !== 1) return -1;
    if (this.ws.getBufferedAmount() > 0) return 0;
    // 0 means Bun dropped the message (not expected with nothing buffered and no backpressureLimit): the
    // byte stream would have a hole, so the connection is closed instead.
    if (this.ws.sendBinary(data) !== 0) return data.length;
    this.ws.close(1011, "message dropped");
    return -1;
  }

  heldBytes(): number {
    return this.ws.getBufferedAmount();
  }

  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }

  end(): void {
    this.ws.close();
  }
}

/** Upgrades a request to MQTT over WebSocket; echoes the `mqtt` subprotocol as [MQTT-6.0.0-3] asks. */
export function upgradeMqtt(req: Request, server: Server<MqttSocketData>): boolean {
  const offered = (req.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim());
  const headers: Record<string, string> = {};
  if (offered.includes("mqtt")) headers["Sec-WebSocket-Protocol"] = "mqtt";
  return server.upgrade(req, { headers, data: {} });
}

export function mqttWebSocketHandler(handle: (stream: Duplex) => void): WebSocketHandler<MqttSocketData> {
  return {
    // The broker bounds what waits for a client; Bun's own limit would drop a message silently.
    backpressureLimit: 0,
    open(ws) {
      ws.binaryType = "nodebuffer";
      const stream = new SocketStream(new WebSocketWire(ws));
      ws.data.stream = stream;
      handle(stream);
    },
    message(ws, message) {
      // [MQTT-6.0.0-1] MQTT control packets travel in binary frames; a text frame closes the connection.
      if (typeof message === "string") return ws.close(1003, "MQTT requires binary frames");
      ws.data.stream?.received(message);
    },
    drain(ws) {
      ws.data.stream?.drained();
    },
    close(ws) {
      const stream = ws.data.stream;
      if (!stream) return;
      ws.data.stream = undefined;
      if (!stream.readableEnded) stream.push(null);
      stream.destroy();
    },
  };
}

/**
 * MQTT over WebSocket on a port of its own, at `path`: the broker's own listener (`broker.websocketPort`),
 * in whatever thread runs the broker. Anything else on the port is a 404 with no body.
 */
export function listenWebSocket(hostname: string, port: number, path: string, handle: (stream: Duplex) => void): Server<MqttSocketData> {
  return Bun.serve<MqttSocketData>({
    hostname,
    port,
    development: false,
    fetch(req, server) {
      const url = new URL(req.url);
      if (url.pathname === path && upgradeMqtt(req, server)) return undefined;
      return new Response(null, { status: 404 });
    },
    error: () => new Response(null, { status: 500 }),
    websocket: mqttWebSocketHandler(handle),
  });
}
