/**
 * A raw MQTT 3.1.1 client for conformance tests: real TCP (or any stream, see rawClient), packets built with
 * mqtt-packet (or written byte by byte, for malformed ones), every packet the
 * server sends kept in order, and the moment the server closes the socket.
 * "Nothing arrived" is checked up to a point the broker provably passed: a
 * PINGRESP on the connection, after a signal from the broker (its reports of a
 * publish, a finished CONNECT, an acknowledgement, a disconnection) or a sentinel.
 */
import { afterAll, beforeAll } from "bun:test";
import { createConnection, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import mqttPacket, { type IConnackPacket, type IConnectPacket, type Packet } from "mqtt-packet";
import type { UserConfig } from "../../config/index";
import { topicMatches } from "../../runtime/protocol";
import { boot, type Booted, ON_MAIN_THREAD, inside } from "./boot";
import * as reports from "./broker-reports";
import type { PublishedPacket } from "./broker-reports";
import { frame, str } from "./mqtt-bytes";

export type { Packet } from "mqtt-packet";

export interface RawClient<S extends Duplex = Socket> extends AsyncDisposable {
  readonly socket: S;
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
  /**
   * Resolves with the first not yet taken packet of this type (taking it), of those `where` accepts
   * when given; rejects after timeoutMs.
   */
  next<C extends Packet["cmd"]>(cmd: C, options?: number | NextOptions<C>): Promise<Extract<Packet, { cmd: C }>>;
  /**
   * Sends a PINGREQ and resolves at its PINGRESP (taking it), at once on a closed connection. The broker
   * writes to a connection in order, so all it wrote this client before it handled the PINGREQ has
   * arrived by then. It orders nothing the broker does later: aedes handles a connection's packets as
   * they arrive (one still in flight, say waiting for the store, does not hold back the next), and
   * what another connection causes comes when it comes; wait for a signal of that first (the broker's
   * `published`, `ready`, `disconnected`, a `sentinel`).
   */
  ping(): Promise<void>;
  /**
   * Rejects if a packet of this type that was not taken has arrived: before the call, or before the
   * PINGRESP of the ping() it sends (no quiet window: "nothing" up to a point the broker passed).
   * Needs a connected session, or a closed connection (then it only checks what arrived).
   */
  nothing(cmd: Packet["cmd"]): Promise<void>;
  /** Resolves once the connection is closed; rejects if it is still open after timeoutMs. */
  waitClosed(timeoutMs?: number): Promise<void>;
  /** Closes the socket without DISCONNECT (an abnormal end for the server). */
  destroy(): void;
  /** Sends DISCONNECT and closes. */
  disconnect(): Promise<void>;
}

export interface NextOptions<C extends Packet["cmd"]> {
  timeoutMs?: number;
  /** Only a packet this accepts. */
  where?: (packet: Extract<Packet, { cmd: C }>) => boolean;
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
  return rawClient(socket, protocolVersion);
}

/**
 * A raw client over a stream already open (a TCP socket, or one end of an in-memory `duplexPair()`
 * whose other end the broker handles); no CONNECT yet.
 */
export function rawClient<S extends Duplex>(socket: S, protocolVersion: 3 | 4 | 5 = 4): RawClient<S> {
  socket.on("error", () => {});

  const parser = mqttPacket.parser({ protocolVersion });
  const received: Packet[] = [];
  const taken = new Set<Packet>();
  const listeners = new Set<() => void>();
  let closed = false;
  /** A CONNACK accepted the session: the broker answers PINGREQs now. */
  let connected = false;
  /** PINGREQs sent so far: the nth PINGRESP received answers the nth (the broker answers in order). */
  let pings = 0;
  const notify = () => {
    for (const listener of [...listeners]) listener();
  };
  parser.on("packet", (packet) => {
    if (packet.cmd === "connack" && (packet.returnCode ?? packet.reasonCode ?? 0) === 0) connected = true;
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

  /** Throws if a packet of this type arrived that no one took. */
  const refuseUntaken = (cmd: Packet["cmd"]) => {
    const packet = received.find((p) => p.cmd === cmd && !taken.has(p));
    if (!packet) return;
    const shown = JSON.stringify(packet, (_k, v) => (v?.type === "Buffer" ? Buffer.from(v.data).toString() : v));
    throw new Error(`unexpected ${cmd}: ${shown} (received: ${received.map((p) => p.cmd).join(", ")})`);
  };
  const client: RawClient<S> = {
    socket,
    received,
    get closed() {
      return closed;
    },
    send(packet) {
      if ((packet as Packet).cmd === "pingreq") pings++;
      socket.write(mqttPacket.generate(packet as Packet, { protocolVersion }));
    },
    sendBytes(bytes) {
      const buffer = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
      if (buffer.length === 2 && buffer[0] === 0xc0 && buffer[1] === 0) pings++;
      socket.write(buffer);
    },
    async connect(options = {}) {
      client.send({ cmd: "connect", protocolId: "MQTT", protocolVersion, clean: true, keepalive: 0, clientId: uniqueId(), ...options });
      return client.next("connack");
    },
    next(cmd, options = {}) {
      const { timeoutMs = 3_000, where } = typeof options === "number" ? { timeoutMs: options } : options;
      return until(
        () => {
          const packet = received.find((p) => p.cmd === cmd && !taken.has(p) && (!where || where(p as Extract<Packet, { cmd: typeof cmd }>)));
          if (packet) {
            taken.add(packet);
            return packet as Extract<Packet, { cmd: typeof cmd }>;
          }
          if (closed) throw new Error(`connection closed before a ${cmd} arrived (received: ${received.map((p) => p.cmd).join(", ") || "nothing"})`);
          return undefined;
        },
        timeoutMs,
        where ? `no ${cmd} of those wanted` : `no ${cmd}`,
      );
    },
    async ping() {
      if (closed) return;
      client.send({ cmd: "pingreq" });
      const mine = pings;
      await until(
        () => {
          if (closed) return true;
          const answer = received.filter((p) => p.cmd === "pingresp")[mine - 1];
          if (!answer) return undefined;
          taken.add(answer);
          return true;
        },
        3_000,
        "no PINGRESP",
      );
    },
    async nothing(cmd) {
      refuseUntaken(cmd);
      if (!connected && !closed) throw new Error("nothing() needs a connected session: the broker answers no PINGREQ before CONNACK");
      await client.ping();
      refuseUntaken(cmd);
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
  /**
   * A connected client (CONNACK accepted), closed after the file's tests. Resolves once the broker
   * finished its CONNECT (see `ready`): a resumed session's queue has been sent by then.
   */
  session(options?: Partial<IConnectPacket>): Promise<RawSession>;
  /** A session subscribed to `filter` (SUBACK received). */
  subscriber(filter: string, qos?: 0 | 1 | 2, options?: Partial<IConnectPacket>): Promise<RawSession>;
  /**
   * A session subscribed to `filter`, once the retained messages its SUBSCRIBE sends have arrived (see
   * `subscribeSettled`): a nothing("publish") after it means no retained message matched.
   */
  subscriberSettled(filter: string, qos?: 0 | 1 | 2, options?: Partial<IConnectPacket>, sentinel?: string): Promise<RawSession>;
  /** Resolves once the broker has published `count` messages `match` accepts (see broker-reports.ts). */
  published(match: (packet: PublishedPacket) => boolean, count?: number): Promise<void>;
  /** Resolves once the broker has finished the CONNECT of `clientId` (see broker-reports.ts). */
  ready(clientId: string): Promise<void>;
  /**
   * Resolves once the broker has taken `count` PUBACKs or PUBCOMPs of `clientId` off its store: a
   * session resumed after it is not sent those messages again for an acknowledgement still on its way.
   */
  acked(clientId: string, count?: number): Promise<void>;
  /** Resolves once the broker has let go of `clientId` (see broker-reports.ts). */
  disconnected(clientId: string): Promise<void>;
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
    async session(options = {}) {
      // An empty client id is replaced by one of the broker's own: then there is no CONNECT to wait for by id.
      const clientId = options.clientId ?? uniqueId();
      const ready = clientId === "" ? null : ctx.ready(clientId);
      ready?.catch(() => {}); // awaited below, once the CONNECT was accepted
      const c = track(await rawSession(ctx.url, { ...options, clientId }));
      await ready;
      return c;
    },
    async subscriber(filter, qos = 0, options) {
      const c = await ctx.session(options);
      c.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: filter, qos }] });
      await c.next("suback");
      return c;
    },
    async subscriberSettled(filter, qos = 0, options, sentinel) {
      const publisher = await ctx.session();
      const c = await ctx.session(options);
      await subscribeSettled(c, filter, qos, publisher, sentinel);
      await publisher.disconnect();
      return c;
    },
    published: (match, count) => reports.published(inside(booted!).aedes, match, count),
    ready: (clientId) => reports.ready(inside(booted!).aedes, clientId),
    acked: (clientId, count) => reports.acked(inside(booted!).aedes, clientId, count),
    disconnected: (clientId) => reports.disconnected(inside(booted!).aedes, clientId),
  };
  beforeAll(async () => {
    booted = await boot({}, overrides, ON_MAIN_THREAD);
  });
  afterAll(async () => {
    for (const c of open) c.destroy();
    await booted?.stop();
  });
  return ctx;
}

/** A connected client: its CONNACK, and the client id it connected with. */
export type RawSession<S extends Duplex = Socket> = RawClient<S> & { connack: IConnackPacket; clientId: string };

/** Opens a connection and completes CONNECT/CONNACK (asserting it was accepted). */
export async function rawSession(url: string, options: Partial<IConnectPacket> = {}): Promise<RawSession> {
  const clientId = options.clientId ?? uniqueId();
  const client = await rawConnect(url, options.protocolVersion ?? 4);
  const connack = await client.connect({ ...options, clientId });
  if (connack.returnCode !== 0) throw new Error(`CONNECT refused with return code ${connack.returnCode}`);
  return Object.assign(client, { connack, clientId });
}

export interface PublishOptions {
  qos?: 0 | 1 | 2;
  retain?: boolean;
  dup?: boolean;
  /** 1 unless given (a QoS 1 or 2 flow is complete before this returns, so the next may use it again). */
  messageId?: number;
}

/**
 * Publishes from a connected session and completes the flow: PUBACK at QoS 1; PUBREC, PUBREL,
 * PUBCOMP at QoS 2. At QoS 0 it returns once sent.
 */
export async function publishFrom(client: RawClient, topic: string, payload: string | Buffer, options: PublishOptions = {}): Promise<void> {
  const { qos = 0, retain = false, dup = false, messageId = 1 } = options;
  client.send({ cmd: "publish", topic, payload, qos, retain, dup, ...(qos > 0 ? { messageId } : {}) });
  const ours = { where: (p: { messageId?: number }) => p.messageId === messageId };
  if (qos === 1) await client.next("puback", ours);
  if (qos === 2) {
    await client.next("pubrec", ours);
    client.send({ cmd: "pubrel", messageId });
    await client.next("pubcomp", ours);
  }
}

/**
 * Publishes a message of its own (QoS 0) on `topic` from `publisher` and waits until `subscriber`,
 * subscribed to `topic`, has it (taking it). For a message that must never be published at all (sent
 * on a connection the broker refused, a will it must discard), where there is no publish to wait
 * for: the sentinel comes after it in the test's order, and the broker's emitter delivers messages in
 * the order it got them. Wait first for the broker's signal that the message would have reached its
 * emitter by then, where it gives one (`disconnected`).
 */
export async function sentinel(publisher: RawClient, subscriber: RawClient, topic: string): Promise<void> {
  const payload = `sentinel ${uniqueId()}`;
  publisher.send({ cmd: "publish", topic, payload, qos: 0, retain: false });
  await subscriber.next("publish", { where: (p) => p.topic === topic && p.payload.toString() === payload });
}

/**
 * Subscribes `client` to `filter` and resolves once the retained messages the SUBSCRIBE sends have
 * arrived. The SUBSCRIBE names a second filter after `filter`: a topic of its own (`topic`; by
 * default one level, which only a `#` of another test matches), whose retained message `publisher`
 * stores first. The broker sends a SUBSCRIBE's retained messages filter by filter, in order, each
 * written before the next (both session stores, and aedes' sendRetained); so once the sentinel's
 * has arrived (taken here), every retained message for `filter` has too. `filter` must not match the
 * sentinel (for a filter starting with a wildcard, give a `$` topic the ACL lets clients use).
 */
export async function subscribeSettled(client: RawClient, filter: string, qos: 0 | 1 | 2, publisher: RawClient, topic = `sentinel-${uniqueId()}`): Promise<void> {
  if (topicMatches(filter, topic)) throw new Error(`${filter} matches the sentinel ${topic}: it would come among the filter's own retained messages`);
  await publishFrom(publisher, topic, "sentinel", { qos: 1, retain: true }); // its PUBACK once stored
  client.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: filter, qos }, { topic, qos: 0 }] });
  await client.next("suback");
  await client.next("publish", { where: (p) => p.topic === topic });
}
