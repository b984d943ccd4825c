/**
 * One MQTT connection as the Node Duplex aedes wants, over a `Wire`: a Bun TCP/TLS socket as it is
 * (tcp.ts) or a Bun WebSocket adapted to one (ws.ts). Written for the broker's hot path:
 * - Writes are framed as they arrive (mqtt-packet writes one packet as several
 *   small pieces: fixed header, length, topic, id, payload) and gathered into one
 *   buffer per connection per turn of the event loop: one send for many packets.
 * - The connection's outgoing queue is bounded (`maxQueuedBytes`). Once that many
 *   bytes wait for the client, QoS 0 PUBLISH packets to it are dropped and counted;
 *   QoS 1/2 PUBLISH and every other packet are still queued, up to
 *   `SLOW_CONSUMER_FACTOR` times the bound, where the client is disconnected as a
 *   slow consumer (its QoS 1 messages stay in its session if it has one). A write
 *   never makes aedes wait for `drain`: aedes holds a message until every
 *   subscriber's write completes, so one stuck client would stall everyone.
 * - Reads pause the wire while aedes has not consumed what it was given
 *   (backpressure to a fast publisher).
 */
import { Duplex } from "node:stream";

/** Counters shared by every connection of a broker, TCP, TLS and WebSocket alike (read by $SYS). */
export interface TransportStats {
  /** MQTT bytes (WebSocket framing not counted). */
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

/** What a connection's bytes go through. A Bun TCP/TLS socket is one as it is. */
export interface Wire {
  /** Sends from `data`; returns how many bytes were taken (the rest waits for `drained()`), -1 once closed. */
  write(data: Uint8Array): number;
  /** Stops reading from the client (it sees TCP backpressure), and starts again. */
  pause(): void;
  resume(): void;
  end(): void;
  /** 1 while open. */
  readonly readyState: number;
  /**
   * Bytes the wire took but still holds, not yet sent (a WebSocket's buffer in Bun). A TCP socket has
   * none: what it took is the kernel's.
   */
  heldBytes?(): number;
}

/** Past this multiple of the bound, a client's queue (QoS ≥ 1 and control packets) disconnects it. */
export const SLOW_CONSUMER_FACTOR = 8;

const START = 0;
const LENGTH = 1;
const BODY = 2;

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
  /** Flushed but not yet taken by the wire: waits for `drain`. */
  private unsent: Buffer[] = [];
  private unsentBytes = 0;
  private scheduled = false;
  private paused = false;
  // Framing of the outgoing byte stream: where the current packet is, and whether it is dropped.
  private phase = START;
  private remaining = 0;
  private multiplier = 1;
  private dropping = false;
  private maxQueuedBytes = 0;
  private slowAt = Infinity;
  private stats!: TransportStats;
  /** Whether the wire holds bytes of its own, counted in the queue. */
  private readonly holds: boolean;

  /** `maxQueuedBytes`: bytes queued for the client beyond which QoS 0 publishes to it are dropped; 0 = unbounded. */
  constructor(
    private readonly wire: Wire,
    maxQueuedBytes = 0,
    stats: TransportStats = transportStats(),
  ) {
    super();
    this.holds = typeof wire.heldBytes === "function";
    this.limit(maxQueuedBytes, stats);
  }

  /**
   * Sets the bound and the counters: for a stream made before the broker saw it (a WebSocket's, made
   * by the gateway), by the broker before aedes gets it.
   */
  limit(maxQueuedBytes: number, stats: TransportStats): void {
    this.maxQueuedBytes = maxQueuedBytes;
    this.slowAt = maxQueuedBytes > 0 ? maxQueuedBytes * SLOW_CONSUMER_FACTOR : Infinity;
    this.stats = stats;
  }

  /** Bytes waiting to reach the client, the wire's own included. */
  get queuedBytes(): number {
    return this.chunkBytes + this.unsentBytes + (this.holds ? this.wire.heldBytes!() : 0);
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
      this.wire.resume();
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.accept(chunk);
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.flush();
    this.wire.end();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.flush();
    if (this.wire.readyState === 1) this.wire.end();
    callback(error);
  }

  /** Bytes from the client, for aedes to read. */
  received(chunk: Buffer): void {
    this.stats.bytesReceived += chunk.length;
    if (!this.push(chunk) && !this.paused) {
      this.paused = true;
      this.wire.pause();
    }
  }

  /** The wire can take more: send what waited. */
  drained(): void {
    const unsent = this.unsent;
    while (unsent.length > 0) {
      const head = unsent[0]!;
      const n = this.wire.write(head);
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
    const n = this.wire.write(data);
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
    // Measured only when bounded (on a WebSocket, measuring asks Bun for its buffer).
    const queued = this.maxQueuedBytes > 0 ? this.queuedBytes : 0;
    if (queued > 0 && queued >= this.maxQueuedBytes) {
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
