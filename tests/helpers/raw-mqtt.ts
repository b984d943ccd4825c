/**
 * A raw MQTT 3.1.1 client for conformance tests: real TCP, packets built with
 * mqtt-packet (or written byte by byte, for malformed ones), every packet the
 * server sends kept in order, and the moment the server closes the socket.
 */
import { afterAll, beforeAll } from "bun:test";
import { createConnection, type Socket } from "node:net";
import mqttPacket, { type IConnackPacket, type IConnectPacket, type Packet } from "mqtt-packet";
import type { UserConfig } from "../../config/index";
import { boot, type Booted } from "./boot";
import { frame, str } from "./mqtt-bytes";

export type { Packet } from "mqtt-packet";

export interface RawClient extends AsyncDisposable {
  readonly socket: Socket;
  /** Every packet received so far, in order. */
  readonly received: Packet[];
  /** True once the server (or we) closed the connection. */
  readonly closed: boolean;
  /** Sends a packet encoded by mqtt-packet. */
  send(packet: Packet | Record<string, unknown>): void;
  /** Sends bytes as they are (for malformed packets). */
  sendBytes(bytes: Buffer | number[]): void;
  /** Sends CONNECT (clean session, keep-alive 0 unless given) and resolves with the CONNACK. */
  connect(options?: Partial<IConnectPacket>): Promise<IConnackPacket>;
  /** Resolves with the next not yet taken packet of this type (taking it); rejects after timeoutMs. */
  next<C extends Packet["cmd"]>(cmd: C, timeoutMs?: number): Promise<Extract<Packet, { cmd: C }>>;
  /** Rejects if a packet of this type arrives within ms; resolves otherwise. */
  nothing(cmd: Packet["cmd"], ms?: number): Promise<void>;
  /** Resolves once the connection is closed; rejects if it is still open after timeoutMs. */
  waitClosed(timeoutMs?: number): Promise<void>;
  /** Closes the socket without DISCONNECT (an abnormal end for the server). */
  destroy(): void;
  /** Sends DISCONNECT and closes. */
  disconnect(): Promise<void>;
}

// ——— bytes for packets mqtt-packet will not build (malformed or breaking a rule) ———

export { frame, str } from "./mqtt-bytes";

export interface RawConnect {
  protocolName?: string;
  level?: number;
  /** The connect flags byte as is (computed from the fields below when absent). */
  flags?: number;
  clean?: boolean;
  keepalive?: number;
  clientId?: string | Buffer;
  will?: { topic: string | Buffer; payload?: string; qos?: number; retain?: boolean };
  username?: string | Buffer;
  password?: string;
}

/** A CONNECT built byte by byte. */
export function connectBytes(c: RawConnect = {}): Buffer {
  const flags =
    c.flags ??
    ((c.clean ?? true ? 0x02 : 0) |
      (c.will ? 0x04 | ((c.will.qos ?? 0) << 3) | (c.will.retain ? 0x20 : 0) : 0) |
      (c.password !== undefined ? 0x40 : 0) |
      (c.username !== undefined ? 0x80 : 0));
  const keepalive = c.keepalive ?? 0;
  const fields = [str(c.protocolName ?? "MQTT"), Buffer.from([c.level ?? 4, flags, keepalive >> 8, keepalive & 0xff]), str(c.clientId ?? uniqueId())];
  if (c.will) fields.push(str(c.will.topic), str(c.will.payload ?? ""));
  if (c.username !== undefined) fields.push(str(c.username));
  if (c.password !== undefined) fields.push(str(c.password));
  return frame(0x10, ...fields);
}

let seq = 0;
/** A client id no other test uses. */
export const uniqueId = (prefix = "raw") => `${prefix}-${++seq}-${Date.now().toString(36)}`;

/** Opens a TCP connection to `mqtt://host:port` (no CONNECT yet). */
export async function rawConnect(url: string, protocolVersion: 3 | 4 | 5 = 4): Promise<RawClient> {
  const { hostname, port } = new URL(url);
  const socket = createConnection({ host: hostname, port: Number(port) });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  socket.setNoDelay(true);
  socket.on("error", () => {});

  const parser = mqttPacket.parser({ protocolVersion });
  const received: Packet[] = [];
  const taken = new Set<Packet>();
  const listeners = new Set<() => void>();
  let closed = false;
  const notify = () => {
    for (const listener of [...listeners]) listener();
  };
  parser.on("packet", (packet) => {
    received.push(packet);
    notify();
  });
  parser.on("error", () => socket.destroy());
  socket.on("data", (chunk: Buffer) => parser.parse(chunk));
  socket.on("close", () => {
    closed = true;
    notify();
  });

  /** Resolves when `check` returns a value, re-checked on every packet and on close. */
  function until<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const run = () => {
        let value: T | undefined;
        try {
          value = check();
        } catch (err) {
          cleanup();
          return reject(err);
        }
        if (value !== undefined) {
          cleanup();
          resolve(value);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${what} within ${timeoutMs} ms (received: ${received.map((p) => p.cmd).join(", ") || "nothing"})`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        listeners.delete(run);
      };
      listeners.add(run);
      run();
    });
  }

  const client: RawClient = {
    socket,
    received,
    get closed() {
      return closed;
    },
    send(packet) {
      socket.write(mqttPacket.generate(packet as Packet, { protocolVersion }));
    },
    sendBytes(bytes) {
      socket.write(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes));
    },
    async connect(options = {}) {
      client.send({ cmd: "connect", protocolId: "MQTT", protocolVersion, clean: true, keepalive: 0, clientId: uniqueId(), ...options });
      return client.next("connack");
    },
    next(cmd, timeoutMs = 3_000) {
      return until(
        () => {
          const packet = received.find((p) => p.cmd === cmd && !taken.has(p));
          if (packet) {
            taken.add(packet);
            return packet as Extract<Packet, { cmd: typeof cmd }>;
          }
          if (closed) throw new Error(`connection closed before a ${cmd} arrived (received: ${received.map((p) => p.cmd).join(", ") || "nothing"})`);
          return undefined;
        },
        timeoutMs,
        `no ${cmd}`,
      );
    },
    async nothing(cmd, ms = 300) {
      const before = received.filter((p) => p.cmd === cmd && !taken.has(p)).length;
      await Bun.sleep(ms);
      const after = received.filter((p) => p.cmd === cmd && !taken.has(p));
      if (after.length > before) throw new Error(`unexpected ${cmd}: ${JSON.stringify(after.at(-1), (_k, v) => (v?.type === "Buffer" ? Buffer.from(v.data).toString() : v))}`);
    },
    waitClosed(timeoutMs = 3_000) {
      return until(() => (closed ? true : undefined), timeoutMs, "connection still open").then(() => {});
    },
    destroy() {
      socket.destroy();
    },
    async disconnect() {
      if (closed) return;
      client.send({ cmd: "disconnect" });
      socket.end();
      await client.waitClosed().catch(() => socket.destroy());
    },
    async [Symbol.asyncDispose]() {
      socket.destroy();
    },
  };
  return client;
}

export interface BrokerUnderTest {
  /** mqtt://127.0.0.1:<port> of the platform booted for this file. */
  readonly url: string;
  readonly booted: Booted;
  /** A TCP connection, closed after the file's tests. */
  connect(protocolVersion?: 3 | 4 | 5): Promise<RawClient>;
  /** A connected client (CONNACK accepted), closed after the file's tests. */
  session(options?: Partial<IConnectPacket>): Promise<RawClient & { connack: IConnackPacket }>;
  /** A session subscribed to `filter` (SUBACK received). */
  subscriber(filter: string, qos?: 0 | 1 | 2, options?: Partial<IConnectPacket>): Promise<RawClient & { connack: IConnackPacket }>;
}

/** Boots a platform (no plugins) for the calling test file: beforeAll/afterAll. */
export function useBroker(overrides: UserConfig = {}): BrokerUnderTest {
  const open: RawClient[] = [];
  let booted: Booted | undefined;
  const track = <T extends RawClient>(c: T): T => (open.push(c), c);
  const ctx: BrokerUnderTest = {
    get url() {
      return booted!.mqttUrl;
    },
    get booted() {
      return booted!;
    },
    connect: async (protocolVersion) => track(await rawConnect(ctx.url, protocolVersion)),
    session: async (options) => track(await rawSession(ctx.url, options)),
    async subscriber(filter, qos = 0, options) {
      const c = await ctx.session(options);
      c.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: filter, qos }] });
      await c.next("suback");
      return c;
    },
  };
  beforeAll(async () => {
    booted = await boot({}, overrides);
  });
  afterAll(async () => {
    for (const c of open) c.destroy();
    await booted?.stop();
  });
  return ctx;
}

/** Opens a connection and completes CONNECT/CONNACK (asserting it was accepted). */
export async function rawSession(url: string, options: Partial<IConnectPacket> = {}): Promise<RawClient & { connack: IConnackPacket }> {
  const client = await rawConnect(url, options.protocolVersion ?? 4);
  const connack = await client.connect(options);
  if (connack.returnCode !== 0) throw new Error(`CONNECT refused with return code ${connack.returnCode}`);
  return Object.assign(client, { connack });
}
