/**
 * The broker benchmarks' MQTT 3.1.1 client (tests/bench/broker-load.ts): a minimal one on
 * Bun.connect (mqtt://) or Bun's WebSocket client (ws://, binary frames, subprotocol "mqtt"), no
 * MQTT.js, so that the load generator stays far cheaper than the broker it measures.
 * It speaks CONNECT, SUBSCRIBE, PUBLISH, PUBACK (and the QoS 2 handshake for ingest); frames are
 * parsed in place (offsets into the chunk, no copy unless a frame spans two chunks), and the
 * PUBACKs a chunk's messages call for go out in one write at the end of that chunk.
 */
import { frame, str } from "../helpers/mqtt-bytes";

/** A frame: its type and flags, and its body as `buf[start, end)` (valid during the call only). */
export type Frame = (type: number, flags: number, buf: Buffer, start: number, end: number) => void;

/** What a connection's bytes go through: a TCP socket or a WebSocket. */
interface Pipe {
  /** Bytes taken (the rest is kept by the caller until `drain`). */
  write(bytes: Buffer): number;
  end(): void;
}

export interface Conn {
  socket: Pipe;
  /** Writes bytes, keeping what the socket did not take until `drain`. */
  send(bytes: Buffer): void;
  /** Queues a PUBACK for `id`: sent with the others of the same chunk once it is parsed. */
  ack(id: number): void;
  /** True while bytes wait for `drain`. */
  blocked(): boolean;
  state: ConnState;
}

export interface ConnState {
  rest: Buffer | null;
  queue: Buffer[];
  acks: Buffer;
  ackBytes: number;
  onFrame: Frame;
  onDrain: () => void;
  onClose: () => void;
  /** After each chunk, once its frames are handled and its acks are sent. */
  onChunk: () => void;
}

export function connectPacket(clientId: string, clean = true): Buffer {
  // protocol name, level 4, clean session (or not), keepalive 0 (no pings needed)
  return frame(0x10, str("MQTT"), Buffer.from([4, clean ? 0x02 : 0, 0, 0]), str(clientId));
}

export function subscribePacket(id: number, filter: string, qos: number): Buffer {
  return frame(0x82, Buffer.from([id >> 8, id & 0xff]), str(filter), Buffer.from([qos]));
}

/** Splits the byte stream into MQTT frames. */
function parse(state: ConnState, chunk: Buffer): void {
  const buf = state.rest ? Buffer.concat([state.rest, chunk]) : chunk;
  const length = buf.length;
  let pos = 0;
  while (length - pos >= 2) {
    let len = 0;
    let mul = 1;
    let i = pos + 1;
    let complete = false;
    while (i < length && i < pos + 5) {
      const b = buf[i++]!;
      len += (b & 0x7f) * mul;
      mul *= 128;
      if ((b & 0x80) === 0) {
        complete = true;
        break;
      }
    }
    if (!complete || length - i < len) break;
    const first = buf[pos]!;
    state.onFrame(first >> 4, first & 0x0f, buf, i, i + len);
    pos = i + len;
  }
  state.rest = pos < length ? Buffer.from(buf.subarray(pos)) : null;
}

function write(pipe: Pipe, state: ConnState, bytes: Buffer): void {
  if (state.queue.length) return void state.queue.push(bytes);
  const n = pipe.write(bytes);
  if (n < bytes.length) state.queue.push(bytes.subarray(Math.max(0, n)));
}

function flushAcks(pipe: Pipe, state: ConnState): void {
  if (state.ackBytes === 0) return;
  write(pipe, state, Buffer.from(state.acks.subarray(0, state.ackBytes)));
  state.ackBytes = 0;
}

/** A chunk of bytes from the broker: its frames, then the acks they called for. */
function received(pipe: Pipe, state: ConnState, chunk: Buffer): void {
  parse(state, chunk);
  flushAcks(pipe, state);
  state.onChunk();
}

/** Sends what waited for `drain`. */
function drained(pipe: Pipe, state: ConnState): void {
  const q = state.queue;
  while (q.length) {
    const head = q[0]!;
    const n = pipe.write(head);
    if (n < head.length) {
      q[0] = head.subarray(Math.max(0, n));
      return;
    }
    q.shift();
  }
  state.onDrain();
}

async function tcpPipe(hostname: string, port: number, state: ConnState): Promise<Pipe> {
  const socket = await Bun.connect<ConnState>({
    hostname,
    port,
    data: state,
    socket: {
      data: (s, chunk) => received(s, s.data, chunk),
      drain: (s) => drained(s, s.data),
      close: (s) => s.data.onClose(),
      error: () => {},
    },
  });
  socket.setNoDelay(true);
  return socket;
}

async function wsPipe(url: string, state: ConnState): Promise<Pipe> {
  const ws = new WebSocket(url, ["mqtt"]);
  ws.binaryType = "nodebuffer" as WebSocket["binaryType"];
  const pipe: Pipe = {
    // Bun's client keeps what the socket did not take and reports it as bufferedAmount.
    write: (bytes) => (ws.bufferedAmount > 1 << 20 ? 0 : (ws.send(bytes), bytes.length)),
    end: () => ws.close(),
  };
  ws.onmessage = (e) => received(pipe, state, e.data as Buffer);
  ws.onclose = () => state.onClose();
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error(`${url}: WebSocket failed`));
  });
  // No drain event on the client: what waits is retried while bytes are queued.
  const timer = setInterval(() => state.queue.length && drained(pipe, state), 1);
  ws.addEventListener("close", () => clearInterval(timer));
  return pipe;
}

/** Connects and waits for CONNACK 0. */
export async function connect(url: string, clientId: string, onFrame: Frame = () => {}, clean = true): Promise<Conn> {
  const { hostname, port } = new URL(url);
  let connack: ((returnCode: number) => void) | null = null;
  const state: ConnState = {
    rest: null,
    queue: [],
    acks: Buffer.allocUnsafe(4 * 4096),
    ackBytes: 0,
    onFrame: (type, flags, buf, start, end) => {
      if (type === 2) connack?.(buf[start + 1] ?? 255);
      else onFrame(type, flags, buf, start, end);
    },
    onDrain: () => {},
    onClose: () => {},
    onChunk: () => {},
  };
  const socket = url.startsWith("ws") ? await wsPipe(url, state) : await tcpPipe(hostname, Number(port), state);
  const conn: Conn = {
    socket,
    state,
    send: (bytes) => write(socket, state, bytes),
    ack(id) {
      if (state.ackBytes + 4 > state.acks.length) {
        const bigger = Buffer.allocUnsafe(state.acks.length * 2);
        state.acks.copy(bigger, 0, 0, state.ackBytes);
        state.acks = bigger;
      }
      const a = state.acks;
      const at = state.ackBytes;
      a[at] = 0x40;
      a[at + 1] = 2;
      a[at + 2] = id >> 8;
      a[at + 3] = id & 0xff;
      state.ackBytes = at + 4;
    },
    blocked: () => state.queue.length > 0,
  };
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no CONNACK from ${url}`)), 10_000);
    connack = (returnCode) => {
      clearTimeout(timer);
      if (returnCode === 0) resolve();
      else reject(new Error(`${url} refused the connection: CONNACK ${returnCode}`));
    };
    state.onClose = () => reject(new Error(`${url} closed the connection before CONNACK`));
    conn.send(connectPacket(clientId, clean));
  });
  state.onClose = () => {};
  return conn;
}

/** Latency histogram in 10 µs buckets up to 10 s. */
export class Histogram {
  private readonly buckets = new Uint32Array(1_000_000);
  count = 0;
  add(ms: number): void {
    this.buckets[Math.min(this.buckets.length - 1, Math.max(0, Math.round(ms * 100)))]!++;
    this.count++;
  }
  quantile(q: number): number {
    const target = Math.ceil(this.count * q);
    let seen = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      seen += this.buckets[i]!;
      if (seen >= target && seen > 0) return i / 100;
    }
    return Number.NaN;
  }
}

/** This process's CPU time so far (user + system), in µs. */
export function ownCpuMicros(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

/**
 * Waits out the warm-up, then counts for `durationMs` (`count(true)` … `count(false)`), printing
 * "measuring" as the window opens (so the bench can read the broker's CPU over the same window):
 * the window's length in ms and this process's CPU over it, in % of one core.
 */
export async function measureWindow(warmupMs: number, durationMs: number, count: (on: boolean) => void): Promise<{ elapsed: number; cpuPct: number }> {
  await Bun.sleep(warmupMs);
  count(true);
  console.log("measuring");
  const cpu = ownCpuMicros();
  const started = performance.now();
  await Bun.sleep(durationMs);
  count(false);
  const elapsed = performance.now() - started;
  return { elapsed, cpuPct: ((ownCpuMicros() - cpu) / (elapsed * 1000)) * 100 };
}
