/**
 * MQTT over WebSocket on Bun's native WebSocket server. aedes wants a Node
 * Duplex per connection; this bridges a Bun ServerWebSocket to one, with
 * backpressure (a write waits for `drain` when Bun reports it is buffering).
 */
import { Duplex } from "node:stream";
import type { Server, ServerWebSocket, WebSocketHandler } from "bun";

export interface MqttSocketData {
  stream?: WebSocketDuplex;
}

class WebSocketDuplex extends Duplex {
  private waiting: (() => void) | null = null;

  constructor(private readonly ws: ServerWebSocket<MqttSocketData>) {
    super();
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.ws.readyState !== 1) return callback(new Error("websocket closed"));
    const sent = this.ws.send(chunk);
    if (sent === -1) this.waiting = () => callback();
    else if (sent === 0) callback(new Error("websocket dropped the message"));
    else callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.ws.close();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.ws.readyState === 1) this.ws.close();
    callback(error);
  }

  drained(): void {
    const waiting = this.waiting;
    this.waiting = null;
    waiting?.();
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
    open(ws) {
      ws.binaryType = "nodebuffer";
      const stream = new WebSocketDuplex(ws);
      ws.data.stream = stream;
      handle(stream);
    },
    message(ws, message) {
      // [MQTT-6.0.0-1] MQTT control packets travel in binary frames; a text frame closes the connection.
      if (typeof message === "string") return ws.close(1003, "MQTT requires binary frames");
      ws.data.stream?.push(message);
    },
    drain(ws) {
      ws.data.stream?.drained();
    },
    close(ws) {
      const stream = ws.data.stream;
      if (!stream) return;
      stream.push(null);
      stream.destroy();
    },
  };
}
