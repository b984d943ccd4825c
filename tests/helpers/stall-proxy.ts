/**
 * A TCP proxy in front of a server whose downstream can be stalled: it stops reading what the server
 * sends, so to the server its clients look like clients that stopped reading (TCP backpressure),
 * whatever the client above it is (an MQTT.js client over ws://, say).
 */
import { createConnection, createServer, type Socket } from "node:net";

export interface StallProxy {
  readonly port: number;
  /** Stops reading from the server, on every connection (open or future). */
  stall(): void;
  /** Reads from the server again. */
  resume(): void;
  close(): Promise<void>;
}

export async function stallProxy(targetPort: number, host = "127.0.0.1"): Promise<StallProxy> {
  const upstreams = new Set<Socket>();
  const sockets = new Set<Socket>();
  let stalled = false;
  const server = createServer((client) => {
    const upstream = createConnection({ host, port: targetPort });
    upstreams.add(upstream);
    sockets.add(client).add(upstream);
    client.on("data", (chunk) => upstream.write(chunk));
    upstream.on("data", (chunk) => client.write(chunk));
    if (stalled) upstream.pause();
    const done = () => {
      upstreams.delete(upstream);
      sockets.delete(client);
      sockets.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) {
      s.on("close", done);
      s.on("error", () => {});
    }
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return {
    port: (server.address() as { port: number }).port,
    stall() {
      stalled = true;
      for (const u of upstreams) u.pause();
    },
    resume() {
      stalled = false;
      for (const u of upstreams) u.resume();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
