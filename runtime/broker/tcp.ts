/**
 * MQTT over TCP (and TLS) on Bun's native sockets (`Bun.listen`). aedes wants a
 * Node Duplex per connection; `SocketStream` is that Duplex, written for the
 * broker's hot path:
 * - Writes are framed as they arrive (mqtt-packet writes one packet as several
 *   small pieces: fixed header, length, topic, id, payload) and gathered into one
 *   buffer per connection per turn of the event loop: one send(2) for many packets.
 * - The connection's outgoing queue is bounded (`maxQueuedBytes`). Once that many
 *   bytes wait for the client, QoS 0 PUBLISH packets to it are dropped and counted;
 *   QoS 1/2 PUBLISH and every other packet are still queued, up to
 *   `SLOW_CONSUMER_FACTOR` times the bound, where the client is disconnected as a
 *   slow consumer (its QoS 1 messages stay in its session if it has one). A write
 *   never makes aedes wait for `drain`: aedes holds a message until every
 *   subscriber's write completes, so one stuck client would stall everyone.
 * - Reads pause the socket while aedes has not consumed what it was given (TCP
 *   backpressure to a fast publisher).
 */
import { Duplex } from "node:stream";
import type { Socket, TCPSocketListener, TLSOptions } from "bun";

/** Counters shared by every connection of a broker (read by $SYS). */
export interface TransportStats {
  bytesReceived: number;
  bytesSent: number;
  /** PUBLISH packets written to clients. */
  publishSent: number;
  /** QoS 0 PUBLISH packets not sent because the client's queue was full. */
  droppedQos0: number;
  /** Clients disconnected because their queue reached SLOW_CONSUMER_FACTOR × the bound. */
  slowConsumers: number;
  /** Connections refused because the broker was at its connection limit. */
  rejected: number;
}

export function transportStats(): TransportStats {
  return { bytesReceived: 0, bytesSent: 0, publishSent: 0, droppedQos0: 0, slowConsumers: 0, rejected: 0 };
}

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

/** Past this multiple of the bound, a client's queue (QoS ≥ 1 and control packets) disconnects it. */
export const SLOW_CONSUMER_FACTOR = 8;

const START = 0;
const LENGTH = 1;
const BODY = 2;

/** CONNACK, return code 3 "Server unavailable" [MQTT-3.2.2-3] (aedes speaks MQTT 3.1 and 3.1.1). */
const SERVER_UNAVAILABLE = Buffer.from([0x20, 0x02, 0x00, 0x03]);

interface SocketData {
  stream: SocketStream | null;
  rejected: boolean;
}

/** Connections with bytes to send this turn, flushed together once per turn of the event loop. */
let dirty: SocketStream[] = [];
let flushScheduled = false;
function flushAll(): void {
  const list = dirty;
  dirty = [];
  flushScheduled = false;
  for (let i = 0; i < list.length; i++) list[i]!.flush();
}

export class SocketStream extends Duplex {
  /** Written since the last flush. */
  private chunks: Array<Buffer | string> = [];
  private chunkBytes = 0;
  /** Flushed but not yet taken by the kernel: waits for `drain`. */
  private unsent: Buffer[] = [];
  private unsentBytes = 0;
  private scheduled = false;
  private paused = false;
  // Framing of the outgoing byte stream: where the current packet is, and whether it is dropped.
  private phase = START;
  private remaining = 0;
  private multiplier = 1;
  private dropping = false;
  private readonly slowAt: number;

  constructor(
    private readonly socket: Socket<SocketData>,
    private readonly maxQueuedBytes: number,
    private readonly stats: TransportStats,
  ) {
    super();
    this.slowAt = maxQueuedBytes > 0 ? maxQueuedBytes * SLOW_CONSUMER_FACTOR : Infinity;
  }

  /** Bytes waiting to reach the client. */
  get queuedBytes(): number {
    return this.chunkBytes + this.unsentBytes;
  }

  // aedes (through mqtt-packet) writes many small pieces per packet; Writable's
  // per-chunk bookkeeping would cost more than the rest of the path.
  override write(chunk: any, encoding?: any, callback?: any): boolean {
    const done = typeof encoding === "function" ? encoding : callback;
    if (!this.destroyed) this.accept(chunk);
    if (typeof done === "function") process.nextTick(done, this.destroyed ? new Error("connection closed") : null);
    return true;
  }

  // Pieces are gathered until the flush anyway.
  override cork(): void {}
  override uncork(): void {}

  override _read(): void {
    if (this.paused) {
      this.paused = false;
      this.socket.resume();
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.accept(chunk);
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.flush();
    this.socket.end();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.flush();
    if (this.socket.readyState === 1) this.socket.end();
    callback(error);
  }

  /** Bytes from the socket, for aedes to read. */
  received(chunk: Buffer): void {
    this.stats.bytesReceived += chunk.length;
    if (!this.push(chunk) && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
  }

  /** The socket can take more: send what waited. */
  drained(): void {
    const unsent = this.unsent;
    while (unsent.length > 0) {
      const head = unsent[0]!;
      const n = this.socket.write(head);
      if (n < 0) return;
      this.stats.bytesSent += n;
      this.unsentBytes -= n;
      if (n < head.length) {
        unsent[0] = head.subarray(n);
        return;
      }
      unsent.shift();
    }
  }

  /** Sends what was written since the last flush, as one buffer. */
  flush(): void {
    this.scheduled = false;
    if (this.chunkBytes === 0) return;
    const chunks = this.chunks;
    const data = chunks.length === 1 && typeof chunks[0] !== "string" ? (chunks[0] as Buffer) : concat(chunks, this.chunkBytes);
    this.chunks = [];
    this.chunkBytes = 0;
    if (this.unsentBytes > 0) {
      this.unsent.push(data);
      this.unsentBytes += data.length;
      return;
    }
    const n = this.socket.write(data);
    if (n < 0) return; // closed; the close handler tears the stream down
    this.stats.bytesSent += n;
    if (n < data.length) {
      this.unsent.push(n > 0 ? data.subarray(n) : data);
      this.unsentBytes += data.length - n;
    }
  }

  private accept(chunk: Buffer | string): void {
    // The common case: a piece inside the current packet's body.
    if (this.phase === BODY) {
      const length = typeof chunk === "string" ? Buffer.byteLength(chunk) : chunk.length;
      if (length <= this.remaining) {
        this.remaining -= length;
        if (this.remaining === 0) this.phase = START;
        if (!this.dropping) this.append(chunk, length);
        return;
      }
    }
    this.scan(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
  }

  /** Walks packet boundaries in `buf`, keeping what is not dropped. */
  private scan(buf: Buffer): void {
    let pos = 0;
    let keepFrom = this.dropping ? -1 : 0;
    while (pos < buf.length) {
      if (this.phase === START) {
        const drop = this.startPacket(buf[pos]!);
        if (drop && keepFrom >= 0) {
          if (pos > keepFrom) this.append(buf.subarray(keepFrom, pos), pos - keepFrom);
          keepFrom = -1;
        } else if (!drop && keepFrom < 0) keepFrom = pos;
        this.dropping = drop;
        this.phase = LENGTH;
        this.remaining = 0;
        this.multiplier = 1;
        pos++;
      } else if (this.phase === LENGTH) {
        const byte = buf[pos++]!;
        this.remaining += (byte & 0x7f) * this.multiplier;
        this.multiplier *= 128;
        if ((byte & 0x80) === 0) this.phase = this.remaining > 0 ? BODY : START;
      } else {
        const n = Math.min(this.remaining, buf.length - pos);
        this.remaining -= n;
        pos += n;
        if (this.remaining === 0) this.phase = START;
      }
    }
    if (keepFrom >= 0 && keepFrom < buf.length) this.append(keepFrom === 0 ? buf : buf.subarray(keepFrom), buf.length - keepFrom);
  }

  /** A packet starts with this byte: true if it is to be dropped. */
  private startPacket(first: number): boolean {
    const isPublish = first >> 4 === 3;
    const queued = this.chunkBytes + this.unsentBytes;
    if (this.maxQueuedBytes > 0 && queued >= this.maxQueuedBytes) {
      // PUBLISH with QoS bits 00
      if ((first & 0xf6) === 0x30) {
        this.stats.droppedQos0++;
        return true;
      }
      if (queued >= this.slowAt) {
        this.stats.slowConsumers++;
        this.destroy(new Error(`slow consumer: ${queued} bytes queued`));
        return true;
      }
    }
    if (isPublish) this.stats.publishSent++;
    return false;
  }

  private append(chunk: Buffer | string, length: number): void {
    this.chunks.push(chunk);
    this.chunkBytes += length;
    if (this.scheduled) return;
    this.scheduled = true;
    dirty.push(this);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flushAll);
    }
  }
}

function concat(chunks: Array<Buffer | string>, total: number): Buffer {
  const out = Buffer.allocUnsafe(total);
  let offset = 0;
  for (let i = 0; i < chunks.length; i++) {
    const c = chunks[i]!;
    if (typeof c === "string") offset += out.write(c, offset);
    else {
      out.set(c, offset);
      offset += c.length;
    }
  }
  return out;
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
