/**
 * MQTT over WebSocket with the broker in its own thread. The gateway's port takes the WebSocket (one
 * port for HTTP and MQTT over WebSocket, as before); each binary frame is handed to the broker's
 * thread, which reads it as a `SocketStream` over a `RelayedWire`, the same as a TCP connection; what
 * the broker writes comes back a frame at a time. Backpressure crosses too: Bun's buffer for the
 * client filling up blocks the wire until `drain`, and aedes not reading pauses the WebSocket.
 */
import type { ServerWebSocket, WebSocketHandler } from "bun";
import type { Wire } from "../../broker/stream";
import type { FromBroker, ToBroker } from "./messages";

/** The broker thread's end: a relayed connection as a Wire. */
export class RelayedWire implements Wire {
  readyState = 1;
  private blocked = false;

  constructor(
    private readonly id: number,
    private readonly post: (message: FromBroker, transfer?: ArrayBuffer[]) => void,
  ) {}

  write(data: Uint8Array): number {
    if (this.readyState !== 1) return -1;
    if (this.blocked) return 0;
    // A copy, transferred: the stream reuses nothing it wrote, but `data` may be a view of a larger buffer.
    const copy = data.slice();
    this.post({ t: "ws-send", id: this.id, data: copy }, [copy.buffer]);
    return data.length;
  }

  /** The client's WebSocket holds bytes it has not sent: nothing more until `unblock`. */
  block(): void {
    this.blocked = true;
  }

  unblock(): void {
    this.blocked = false;
  }

  /** The WebSocket closed (the gateway said so). */
  closed(): void {
    this.readyState = 3;
  }

  pause(): void {
    this.post({ t: "ws-pause", id: this.id });
  }

  resume(): void {
    this.post({ t: "ws-resume", id: this.id });
  }

  end(): void {
    if (this.readyState !== 1) return;
    this.readyState = 2;
    this.post({ t: "ws-end", id: this.id });
  }
}

export interface RelayedSocketData {
  relay?: number;
}

/** The main thread's end: the gateway's WebSocket handler, and what it does with the broker's frames. */
export class WebSocketRelay {
  private readonly sockets = new Map<number, ServerWebSocket<RelayedSocketData>>();
  private next = 1;
  private post: ((message: ToBroker) => void) | null = null;

  /** Relays to a (new) broker thread; null while there is none. */
  attach(post: ((message: ToBroker) => void) | null): void {
    this.post = post;
  }

  /** Closes every relayed connection (their broker is gone: the clients reconnect). */
  closeAll(code: number, reason: string): void {
    for (const ws of this.sockets.values()) ws.close(code, reason);
    this.sockets.clear();
  }

  /** A frame, pause or end from the broker's thread. */
  received(message: Extract<FromBroker, { t: "ws-send" | "ws-pause" | "ws-resume" | "ws-end" }>): void {
    const ws = this.sockets.get(message.id);
    if (!ws) return;
    switch (message.t) {
      case "ws-send": {
        const sent = ws.sendBinary(message.data);
        // -1: Bun holds it until `drain`; 0: dropped, a hole in the byte stream, so the connection goes.
        if (sent === -1) this.post?.({ t: "ws-blocked", id: message.id });
        else if (sent === 0) ws.close(1011, "message dropped");
        return;
      }
      case "ws-pause":
        return ws.pause();
      case "ws-resume":
        return ws.resume();
      case "ws-end":
        this.sockets.delete(message.id);
        return ws.close();
    }
  }

  readonly handler: WebSocketHandler<RelayedSocketData> = {
    // The broker bounds what waits for a client; Bun's own limit would drop a message silently.
    backpressureLimit: 0,
    open: (ws) => {
      if (!this.post) return ws.close(1013, "broker restarting");
      const id = this.next++;
      ws.data.relay = id;
      this.sockets.set(id, ws);
      this.post({ t: "ws-open", id });
    },
    message: (ws, message) => {
      // [MQTT-6.0.0-1] MQTT control packets travel in binary frames; a text frame closes the connection.
      if (typeof message === "string") return ws.close(1003, "MQTT requires binary frames");
      const id = ws.data.relay;
      if (id !== undefined) this.post?.({ t: "ws-data", id, data: message });
    },
    drain: (ws) => {
      const id = ws.data.relay;
      if (id !== undefined) this.post?.({ t: "ws-drained", id });
    },
    close: (ws) => {
      const id = ws.data.relay;
      if (id === undefined) return;
      ws.data.relay = undefined;
      if (this.sockets.delete(id)) this.post?.({ t: "ws-closed", id });
    },
  };
}
