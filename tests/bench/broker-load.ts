/**
 * Load generator for the broker benchmarks (tests/bench/broker.ts, retained.ts, durability.ts), run
 * in a process of its own so the broker's CPU is its own (the benches pin it to a core of its own
 * where taskset is there). The client is tests/bench/mqtt-client.ts: no MQTT.js, frames parsed in
 * place, a chunk's PUBACKs sent in one write, so the generator stays far cheaper than the broker.
 * Each mode prints "measuring" when its measured window opens, then one JSON line with its result,
 * `genCpuPct` among it: this process's own CPU over the window, in % of one core.
 *
 *   bun broker-load.ts flow <mqtt-url> <qos 0|1> <subscribers> <warmupMs> <durationMs> <window> <payloadBytes>
 *     One publisher, N subscribers on one topic. The publisher keeps at most
 *     `window` messages in flight (published, not yet received by every
 *     subscriber). Prints delivered/s, p50/p99 latency (ms, from a timestamp
 *     in the payload), messages lost (never completed).
 *   bun broker-load.ts ingest <mqtt-url> <qos 1|2> <offlineSessions> <warmupMs> <durationMs> <window> <payloadBytes>
 *     What the broker takes in and acknowledges: `offlineSessions` persistent
 *     sessions (clean session 0) subscribe at QoS 1 and go offline, so every
 *     publish is stored for each; one publisher keeps at most `window` QoS 1
 *     (or QoS 2) publishes unacknowledged. Prints acknowledged (PUBACK, or
 *     PUBCOMP) per second, p50/p99 from PUBLISH to that ack (ms).
 *   bun broker-load.ts idle <mqtt-url> <connections>
 *     Opens that many connections (CONNECT/CONNACK), prints "connected n", and
 *     holds them until killed.
 *   bun broker-load.ts retained-publish <mqtt-url> <count> <inFlight> <payloadBytes>
 *     Publishes `count` retained QoS 1 messages on sensors/<n % 1000>/<n>, at most
 *     `inFlight` unacknowledged. Prints the time from the first PUBLISH to the last PUBACK.
 *   bun broker-load.ts retained-subscribe <mqtt-url> <filter> <count> <timeoutMs>
 *     Subscribes to `filter` at QoS 1 and waits for `count` retained messages. Prints the time
 *     from SUBSCRIBE to the last of them (or, past `timeoutMs` without one arriving, how many came).
 */
import { type Conn, type Frame, Histogram, connect, measureWindow, ownCpuMicros, subscribePacket } from "./mqtt-client";
import { remainingLength, str } from "../helpers/mqtt-bytes";

/** Connects a client that subscribes to `filter` at `qos` and hands every PUBLISH to `onPublish`. */
async function subscriber(url: string, clientId: string, filter: string, qos: number, onPublish: Frame, clean = true): Promise<Conn> {
  let subacked: (() => void) | null = null;
  const conn = await connect(
    url,
    clientId,
    (type, flags, buf, start, end) => {
      if (type === 9) subacked?.();
      else if (type === 3) onPublish(type, flags, buf, start, end);
    },
    clean,
  );
  await new Promise<void>((resolve) => {
    subacked = resolve;
    conn.send(subscribePacket(1, filter, qos));
  });
  return conn;
}

async function flow(url: string, qos: number, subscribers: number, warmupMs: number, durationMs: number, window: number, payloadBytes: number) {
  const topic = `bench/flow/${process.pid}`;
  const ring = 1 << 20;
  const received = new Uint8Array(ring);
  const histogram = new Histogram();
  let measuring = false;
  let delivered = 0;
  let completed = 0;
  let published = 0;
  let pump: () => void = () => {};

  const subs: Conn[] = [];
  for (let i = 0; i < subscribers; i++) {
    let conn: Conn | null = null;
    conn = await subscriber(url, `bench-sub-${process.pid}-${i}`, topic, qos, (_type, flags, buf, start) => {
      let at = start + 2 + buf.readUInt16BE(start);
      if ((flags >> 1) & 3) {
        conn!.ack(buf.readUInt16BE(at));
        at += 2;
      }
      const seq = buf.readUInt32BE(at);
      if (measuring) {
        delivered++;
        histogram.add(performance.now() - buf.readDoubleBE(at + 8));
      }
      if (++received[seq & (ring - 1)]! === subscribers) completed++;
    });
    // A chunk's messages are counted first, then the window refills once.
    conn.state.onChunk = () => pump();
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
        received[seq & (ring - 1)] = 0;
        out.writeUInt32BE(seq >>> 0, at);
        out.writeUInt32BE(0, at + 4);
        out.writeDoubleBE(now, at + 8);
        out.fill(0, at + 16, at + payloadBytes);
      }
      publisher.send(out);
    });
  };
  publisher.state.onDrain = pump;

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
  const { elapsed, cpuPct } = await measureWindow(warmupMs, durationMs, (on) => (measuring = on));
  stopped = true;
  clearInterval(watchdog);
  console.log(
    JSON.stringify({
      delivered,
      rate: (delivered / elapsed) * 1000,
      p50: histogram.quantile(0.5),
      p99: histogram.quantile(0.99),
      lost,
      genCpuPct: cpuPct,
    }),
  );
  for (const c of [publisher, ...subs]) c.socket.end();
}

async function ingest(url: string, qos: number, offlineSessions: number, warmupMs: number, durationMs: number, window: number, payloadBytes: number) {
  const topic = `bench/ingest/${process.pid}`;
  for (let i = 0; i < offlineSessions; i++) {
    const conn = await subscriber(url, `bench-offline-${process.pid}-${i}`, topic, 1, () => {}, false);
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
  };
  publisher = await connect(url, `bench-ingest-${process.pid}`, (type, _flags, buf, start) => {
    const id = buf.readUInt16BE(start);
    if (type === 4) done(id); // PUBACK
    else if (type === 5) publisher.send(Buffer.from([0x62, 2, id >> 8, id & 0xff])); // PUBREC: PUBREL
    else if (type === 7) done(id); // PUBCOMP
  });
  publisher.state.onChunk = pump;
  publisher.state.onDrain = pump;
  pump();
  // A turn in which nothing arrives nor drains would leave the window unfilled: try again now and then.
  const retry = setInterval(pump, 20);
  const { elapsed, cpuPct } = await measureWindow(warmupMs, durationMs, (on) => (measuring = on));
  stopped = true;
  clearInterval(retry);
  console.log(JSON.stringify({ acked, rate: (acked / elapsed) * 1000, p50: histogram.quantile(0.5), p99: histogram.quantile(0.99), genCpuPct: cpuPct }));
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

/** `count` retained QoS 1 messages on sensors/<n % 1000>/<n>, at most `inFlight` unacknowledged. */
async function retainedPublish(url: string, count: number, inFlight: number, payloadBytes: number) {
  let acked = 0;
  let sent = 0;
  let outstanding = 0;
  let nextId = 1;
  let pumping = false;
  let finish: () => void = () => {};
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const payload = Buffer.alloc(payloadBytes, 7);
  let publisher: Conn;
  const pump = () => {
    if (pumping) return;
    pumping = true;
    queueMicrotask(() => {
      pumping = false;
      if (publisher.blocked()) return;
      const room = Math.min(inFlight - outstanding, count - sent);
      if (room <= 0) return;
      const frames: Buffer[] = [];
      for (let k = 0; k < room; k++) {
        const n = sent++;
        const topic = Buffer.from(`sensors/${n % 1000}/${n}`);
        const bodyLen = 2 + topic.length + 2 + payloadBytes;
        const f = Buffer.allocUnsafe(1 + remainingLength(bodyLen).length + bodyLen);
        let at = 0;
        f[at++] = 0x33; // PUBLISH, QoS 1, retain
        for (const b of remainingLength(bodyLen)) f[at++] = b;
        at = f.writeUInt16BE(topic.length, at);
        at += topic.copy(f, at);
        at = f.writeUInt16BE(nextId, at);
        nextId = nextId === 65535 ? 1 : nextId + 1;
        payload.copy(f, at);
        frames.push(f);
      }
      outstanding += room;
      publisher.send(Buffer.concat(frames));
    });
  };
  publisher = await connect(url, `bench-retained-pub-${process.pid}`, (type) => {
    if (type !== 4) return;
    outstanding--;
    if (++acked === count) finish();
  });
  publisher.state.onChunk = pump;
  publisher.state.onDrain = pump;
  console.log("measuring");
  const cpu = ownCpuMicros();
  const started = performance.now();
  pump();
  await finished;
  const ms = performance.now() - started;
  console.log(JSON.stringify({ acked, ms, rate: (acked / ms) * 1000, genCpuPct: ((ownCpuMicros() - cpu) / (ms * 1000)) * 100 }));
  publisher.socket.end();
}

/** Subscribes to `filter` and times the arrival of `count` retained messages. */
async function retainedSubscribe(url: string, filter: string, count: number, timeoutMs: number) {
  let received = 0;
  let lastAt = performance.now();
  let finish: () => void = () => {};
  const finished = new Promise<void>((resolve) => (finish = resolve));
  let started = 0;
  let cpu = 0;
  const conn = await connect(url, `bench-retained-sub-${process.pid}`, (type, flags, buf, start) => {
    if (type === 9) {
      return;
    }
    if (type !== 3) return;
    if ((flags >> 1) & 3) conn.ack(buf.readUInt16BE(start + 2 + buf.readUInt16BE(start)));
    if (flags & 1) received++;
    lastAt = performance.now();
    if (received === count) finish();
  });
  const stall = setInterval(() => {
    if (performance.now() - lastAt > timeoutMs) finish();
  }, 100);
  console.log("measuring");
  cpu = ownCpuMicros();
  started = performance.now();
  lastAt = started;
  conn.send(subscribePacket(1, filter, 1));
  await finished;
  clearInterval(stall);
  const ms = lastAt - started;
  console.log(JSON.stringify({ received, complete: received === count, ms, rate: (received / ms) * 1000, genCpuPct: ((ownCpuMicros() - cpu) / ((performance.now() - started) * 1000)) * 100 }));
  conn.socket.end();
}

const [mode, url, ...rest] = process.argv.slice(2);
const n = rest.map(Number);
if (mode === "flow") await flow(url!, n[0]!, n[1]!, n[2]!, n[3]!, n[4]!, n[5]!);
else if (mode === "ingest") await ingest(url!, n[0]!, n[1]!, n[2]!, n[3]!, n[4]!, n[5]!);
else if (mode === "idle") await idle(url!, n[0]!);
else if (mode === "retained-publish") await retainedPublish(url!, n[0]!, n[1]!, n[2]!);
else if (mode === "retained-subscribe") await retainedSubscribe(url!, rest[0]!, n[1]!, n[2]!);
else throw new Error(`usage: broker-load.ts flow|ingest|idle|retained-publish|retained-subscribe <url> ...`);
process.exit(0);
