/**
 * Load generator for the broker benchmark (tests/bench/broker.ts), run in a
 * process of its own so the broker's CPU is its own. A minimal MQTT 3.1.1
 * client on Bun.connect (no MQTT.js: the generator must be cheaper than the
 * broker it measures), speaking just CONNECT, SUBSCRIBE, PUBLISH and PUBACK.
 *
 *   bun broker-load.ts flow <mqtt-url> <qos 0|1> <subscribers> <warmupMs> <durationMs> <window> <payloadBytes>
 *     One publisher, N subscribers on one topic. The publisher keeps at most
 *     `window` messages in flight (published, not yet received by every
 *     subscriber). Prints one JSON line: delivered/s, p50/p99 latency (ms,
 *     from a timestamp in the payload), messages lost (never completed).
 *   bun broker-load.ts ingest <mqtt-url> <qos 1|2> <offlineSessions> <warmupMs> <durationMs> <window> <payloadBytes>
 *     What the broker takes in and acknowledges: `offlineSessions` persistent
 *     sessions (clean session 0) subscribe at QoS 1 and go offline, so every
 *     publish is stored for each; one publisher keeps at most `window` QoS 1
 *     (or QoS 2) publishes unacknowledged. Prints one JSON line: acknowledged
 *     (PUBACK, or PUBCOMP) per second, p50/p99 from PUBLISH to that ack (ms).
 *   bun broker-load.ts idle <mqtt-url> <connections>
 *     Opens that many connections (CONNECT/CONNACK), prints "connected n", and
 *     holds them until killed.
 */
import type { Socket } from "bun";
import { frame, remainingLength, str } from "../helpers/mqtt-bytes";

type Frame = (type: number, flags: number, body: Buffer) => void;

interface Conn {
  socket: Socket<ConnState>;
  /** Writes bytes, keeping what the socket did not take until `drain`. */
  send(bytes: Buffer): void;
  /** True while bytes wait for `drain`. */
  blocked(): boolean;
}

interface ConnState {
  rest: Buffer | null;
  queue: Buffer[];
  onFrame: Frame;
  onDrain: () => void;
  onClose: () => void;
}

function connectPacket(clientId: string, clean = true): Buffer {
  // protocol name, level 4, clean session (or not), keepalive 0 (no pings needed)
  return frame(0x10, str("MQTT"), Buffer.from([4, clean ? 0x02 : 0, 0, 0]), str(clientId));
}

function subscribePacket(id: number, filter: string, qos: number): Buffer {
  return frame(0x82, Buffer.from([id >> 8, id & 0xff]), str(filter), Buffer.from([qos]));
}

/** Splits the byte stream into MQTT frames. */
function parse(state: ConnState, chunk: Buffer): void {
  let buf = state.rest ? Buffer.concat([state.rest, chunk]) : chunk;
  let pos = 0;
  while (buf.length - pos >= 2) {
    let len = 0;
    let mul = 1;
    let i = pos + 1;
    let complete = false;
    while (i < buf.length && i < pos + 5) {
      const b = buf[i++]!;
      len += (b & 0x7f) * mul;
      mul *= 128;
      if ((b & 0x80) === 0) {
        complete = true;
        break;
      }
    }
    if (!complete || buf.length - i < len) break;
    const first = buf[pos]!;
    state.onFrame(first >> 4, first & 0x0f, buf.subarray(i, i + len));
    pos = i + len;
  }
  state.rest = pos < buf.length ? Buffer.from(buf.subarray(pos)) : null;
}

async function connect(url: string, clientId: string, onFrame: Frame = () => {}, clean = true): Promise<Conn> {
  const { hostname, port } = new URL(url);
  let connack: ((returnCode: number) => void) | null = null;
  const state: ConnState = {
    rest: null,
    queue: [],
    onFrame: (type, flags, body) => {
      if (type === 2) connack?.(body[1] ?? 255);
      else onFrame(type, flags, body);
    },
    onDrain: () => {},
    onClose: () => {},
  };
  const socket = await Bun.connect<ConnState>({
    hostname,
    port: Number(port),
    data: state,
    socket: {
      data: (s, chunk) => parse(s.data, chunk),
      drain: (s) => {
        const q = s.data.queue;
        while (q.length) {
          const head = q[0]!;
          const n = s.write(head);
          if (n < head.length) {
            q[0] = head.subarray(Math.max(0, n));
            return;
          }
          q.shift();
        }
        s.data.onDrain();
      },
      close: (s) => s.data.onClose(),
      error: () => {},
    },
  });
  socket.setNoDelay(true);
  const conn: Conn = {
    socket,
    send(bytes) {
      if (state.queue.length) return void state.queue.push(bytes);
      const n = socket.write(bytes);
      if (n < bytes.length) state.queue.push(bytes.subarray(Math.max(0, n)));
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
  return conn;
}

/** Latency histogram in 10 µs buckets up to 10 s. */
class Histogram {
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

async function flow(url: string, qos: number, subscribers: number, warmupMs: number, durationMs: number, window: number, payloadBytes: number) {
  const topic = `bench/flow/${process.pid}`;
  const ring = 1 << 20;
  const received = new Uint8Array(ring);
  const sentAt = new Float64Array(ring);
  const histogram = new Histogram();
  let measuring = false;
  let delivered = 0;
  let completed = 0;
  let published = 0;
  let pump: () => void = () => {};

  const subs: Conn[] = [];
  for (let i = 0; i < subscribers; i++) {
    let conn: Conn;
    const onFrame: Frame = (type, flags, body) => {
      if (type === 9) return subacked?.();
      if (type !== 3) return;
      const topicLen = body.readUInt16BE(0);
      let at = 2 + topicLen;
      const packetQos = (flags >> 1) & 3;
      if (packetQos > 0) {
        conn.send(Buffer.from([0x40, 2, body[at]!, body[at + 1]!]));
        at += 2;
      }
      const seq = body.readUInt32BE(at);
      const slot = seq & (ring - 1);
      if (measuring) {
        delivered++;
        histogram.add(performance.now() - body.readDoubleBE(at + 8));
      }
      if (++received[slot]! === subscribers) {
        completed++;
        pump();
      }
    };
    let subacked: (() => void) | null = null;
    conn = await connect(url, `bench-sub-${process.pid}-${i}`, onFrame);
    await new Promise<void>((resolve) => {
      subacked = resolve;
      conn.send(subscribePacket(1, topic, qos));
    });
    subs.push(conn);
  }

  const publisher = await connect(url, `bench-pub-${process.pid}`);
  const topicBytes = str(topic);
  const header = qos === 0 ? 0x30 : 0x32;
  const bodyLen = topicBytes.length + (qos ? 2 : 0) + payloadBytes;
  const fixed = Buffer.from([header, ...remainingLength(bodyLen)]);
  const frameLen = fixed.length + bodyLen;
  let nextId = 1;
  let pumping = false;
  let stopped = false;
  let lastProgress = performance.now();
  let lastCompleted = 0;

  pump = () => {
    if (pumping || stopped) return;
    pumping = true;
    queueMicrotask(() => {
      pumping = false;
      if (stopped || publisher.blocked()) return;
      const room = window - (published - completed);
      if (room <= 0) return;
      const out = Buffer.allocUnsafe(room * frameLen);
      const now = performance.now();
      for (let k = 0; k < room; k++) {
        const base = k * frameLen;
        fixed.copy(out, base);
        let at = base + fixed.length;
        topicBytes.copy(out, at);
        at += topicBytes.length;
        if (qos) {
          out.writeUInt16BE(nextId, at);
          nextId = nextId === 65535 ? 1 : nextId + 1;
          at += 2;
        }
        const seq = published++;
        const slot = seq & (ring - 1);
        received[slot] = 0;
        sentAt[slot] = now;
        out.writeUInt32BE(seq >>> 0, at);
        out.writeUInt32BE(0, at + 4);
        out.writeDoubleBE(now, at + 8);
        out.fill(0, at + 16, at + payloadBytes);
      }
      publisher.send(out);
    });
  };
  publisher.socket.data.onDrain = pump;

  // Messages that never complete (dropped somewhere) would hold the window
  // shut: after 1 s without progress, count them lost and go on.
  let lost = 0;
  const watchdog = setInterval(() => {
    if (completed !== lastCompleted) {
      lastCompleted = completed;
      lastProgress = performance.now();
    } else if (performance.now() - lastProgress > 1_000 && published > completed) {
      lost += published - completed;
      completed = published;
      lastProgress = performance.now();
      pump();
    }
  }, 100);

  pump();
  const elapsed = await measureWindow(warmupMs, durationMs, (on) => (measuring = on));
  stopped = true;
  clearInterval(watchdog);
  console.log(
    JSON.stringify({
      delivered,
      rate: (delivered / elapsed) * 1000,
      p50: histogram.quantile(0.5),
      p99: histogram.quantile(0.99),
      lost,
    }),
  );
  for (const c of [publisher, ...subs]) c.socket.end();
}

async function ingest(url: string, qos: number, offlineSessions: number, warmupMs: number, durationMs: number, window: number, payloadBytes: number) {
  const topic = `bench/ingest/${process.pid}`;
  for (let i = 0; i < offlineSessions; i++) {
    let subacked: (() => void) | null = null;
    const conn = await connect(url, `bench-offline-${process.pid}-${i}`, (type) => (type === 9 ? subacked?.() : undefined), false);
    await new Promise<void>((resolve) => {
      subacked = resolve;
      conn.send(subscribePacket(1, topic, 1));
    });
    conn.send(Buffer.from([0xe0, 0])); // DISCONNECT: the session stays, offline
    conn.socket.end();
  }

  const histogram = new Histogram();
  const sentAt = new Float64Array(65536);
  let measuring = false;
  let acked = 0;
  let inFlight = 0;
  let nextId = 1;
  let pumping = false;
  let stopped = false;
  const topicBytes = str(topic);
  const bodyLen = topicBytes.length + 2 + payloadBytes;
  const fixed = Buffer.from([qos === 2 ? 0x34 : 0x32, ...remainingLength(bodyLen)]);
  const frameLen = fixed.length + bodyLen;
  let publisher: Conn;
  const pump = () => {
    if (pumping || stopped) return;
    pumping = true;
    queueMicrotask(() => {
      pumping = false;
      if (stopped || publisher.blocked()) return;
      const room = window - inFlight;
      if (room <= 0) return;
      const out = Buffer.allocUnsafe(room * frameLen);
      const now = performance.now();
      for (let k = 0; k < room; k++) {
        let at = k * frameLen;
        fixed.copy(out, at);
        at += fixed.length;
        topicBytes.copy(out, at);
        at += topicBytes.length;
        out.writeUInt16BE(nextId, at);
        sentAt[nextId] = now;
        nextId = nextId === 65535 ? 1 : nextId + 1;
        out.fill(7, at + 2, at + 2 + payloadBytes);
      }
      inFlight += room;
      publisher.send(out);
    });
  };
  const done = (id: number) => {
    inFlight--;
    if (measuring) {
      acked++;
      histogram.add(performance.now() - sentAt[id]!);
    }
    pump();
  };
  publisher = await connect(url, `bench-ingest-${process.pid}`, (type, _flags, body) => {
    const id = body.readUInt16BE(0);
    if (type === 4) done(id); // PUBACK
    else if (type === 5) publisher.send(Buffer.from([0x62, 2, id >> 8, id & 0xff])); // PUBREC: PUBREL
    else if (type === 7) done(id); // PUBCOMP
  });
  publisher.socket.data.onDrain = pump;
  pump();
  const elapsed = await measureWindow(warmupMs, durationMs, (on) => (measuring = on));
  stopped = true;
  console.log(JSON.stringify({ acked, rate: (acked / elapsed) * 1000, p50: histogram.quantile(0.5), p99: histogram.quantile(0.99) }));
  publisher.socket.end();
}

async function idle(url: string, connections: number) {
  const conns: Conn[] = [];
  // a few at a time, as a fleet of devices would come up
  for (let i = 0; i < connections; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, connections - i) }, (_, k) => connect(url, `bench-idle-${process.pid}-${i + k}`)),
    );
    conns.push(...batch);
  }
  console.log(`connected ${conns.length}`);
  await new Promise(() => {}); // held until killed
}

const [mode, url, ...rest] = process.argv.slice(2);
const n = rest.map(Number);
if (mode === "flow") await flow(url!, n[0]!, n[1]!, n[2]!, n[3]!, n[4]!, n[5]!);
else if (mode === "ingest") await ingest(url!, n[0]!, n[1]!, n[2]!, n[3]!, n[4]!, n[5]!);
else if (mode === "idle") await idle(url!, n[0]!);
else throw new Error(`usage: broker-load.ts flow|ingest|idle <url> ...`);
process.exit(0);

/** Waits out the warm-up, then counts for `durationMs` (`count(true)` … `count(false)`): the window's length in ms. */
async function measureWindow(warmupMs: number, durationMs: number, count: (on: boolean) => void): Promise<number> {
  await Bun.sleep(warmupMs);
  count(true);
  const started = performance.now();
  await Bun.sleep(durationMs);
  count(false);
  return performance.now() - started;
}
