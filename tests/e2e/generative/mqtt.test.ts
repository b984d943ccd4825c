/**
 * Generated hostile MQTT against the compiled binary's broker:
 * - sequences of valid packets (MQTT 3.1, 3.1.1 and 5) mutated byte by byte: the connection is
 *   served or closed, never left hanging once the client is gone, and the broker still serves a
 *   fresh client after each;
 * - floods at QoS 0, 1 and 2 on generated topics to a subscriber with a generated filter: every
 *   QoS 1 and 2 message the publisher had acknowledged reaches a matching subscription, QoS 2 once.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createConnection } from "node:net";
import mqttPacket, { type Packet } from "mqtt-packet";
import { startBinary, type Running } from "../../helpers/binary";
import { connectMqtt } from "../../helpers/mqtt";
import { checkProperty, fc } from "../../helpers/property";
import { tempDir } from "../../helpers/tmp";

const dir = tempDir("plinth-gen-mqtt");
let app: Running;

beforeAll(async () => {
  app = await startBinary(dir.path, ["--no-watch"]);
});
afterAll(async () => {
  await app?.stop("SIGKILL");
  dir[Symbol.dispose]();
});

// ——— generators ———

const level = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom("a", "b", "events", "orders", "$SYS", "$platform", "sensors", "x") },
  { weight: 1, arbitrary: fc.constantFrom("", " ", "ü", "\u{1f4a9}", "+", "#", "a+", "#b", "\u0000") },
  { weight: 1, arbitrary: fc.string({ maxLength: 6 }) },
);
const topicOf = (levels: fc.Arbitrary<string>, max = 6) => fc.array(levels, { minLength: 1, maxLength: max }).map((l) => l.join("/"));
const anyTopic = fc.oneof(
  { weight: 8, arbitrary: topicOf(level) },
  { weight: 1, arbitrary: fc.integer({ min: 100, max: 20_000 }).map((n) => "a/".repeat(n) + "#") },
  { weight: 1, arbitrary: fc.integer({ min: 1_000, max: 30_000 }).map((n) => "x".repeat(n)) },
);
const qos = fc.constantFrom(0 as const, 1 as const, 2 as const);
const messageId = fc.integer({ min: 0, max: 65535 });

const packet: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.record({
    cmd: fc.constant("connect"),
    protocolId: fc.constantFrom("MQTT", "MQIsdp", "MQTX"),
    protocolVersion: fc.constantFrom(3, 4, 5),
    clean: fc.boolean(),
    keepalive: fc.integer({ min: 0, max: 65535 }),
    clientId: fc.oneof(fc.constant(""), fc.string({ maxLength: 30 })),
    username: fc.option(fc.string({ maxLength: 20 }), { nil: undefined }),
    password: fc.option(fc.string({ maxLength: 20 }).map((s) => Buffer.from(s)), { nil: undefined }),
    will: fc.option(fc.record({ topic: anyTopic, payload: fc.string({ maxLength: 50 }).map((s) => Buffer.from(s)), qos, retain: fc.boolean() }), { nil: undefined }),
  }),
  fc.record({ cmd: fc.constant("subscribe"), messageId, subscriptions: fc.array(fc.record({ topic: anyTopic, qos }), { minLength: 1, maxLength: 4 }) }),
  fc.record({ cmd: fc.constant("unsubscribe"), messageId, unsubscriptions: fc.array(anyTopic, { minLength: 1, maxLength: 3 }) }),
  fc.record({ cmd: fc.constant("publish"), topic: anyTopic, qos, retain: fc.boolean(), dup: fc.boolean(), messageId, payload: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)) }),
  fc.record({ cmd: fc.constantFrom("puback", "pubrec", "pubrel", "pubcomp"), messageId }),
  fc.record({ cmd: fc.constantFrom("pingreq", "disconnect", "pingresp", "connack", "suback") }),
);

const mutation = fc.record({
  at: fc.nat(),
  op: fc.constantFrom("flip", "insert", "delete", "set"),
  byte: fc.integer({ min: 0, max: 255 }),
});

interface Session {
  version: 3 | 4 | 5;
  packets: Array<Record<string, unknown>>;
  mutations: Array<{ at: number; op: string; byte: number }>;
}

const session: fc.Arbitrary<Session> = fc.record({
  version: fc.constantFrom(3 as const, 4 as const, 5 as const),
  packets: fc.array(packet, { minLength: 1, maxLength: 6 }),
  mutations: fc.array(mutation, { maxLength: 4 }),
});

/** The bytes of a session: each packet as mqtt-packet encodes it (ones it will not encode left out), then mutated. */
function bytesOf(s: Session): Buffer {
  const parts: Buffer[] = [];
  for (const p of s.packets) {
    try {
      const version = p.cmd === "connect" ? (p.protocolVersion as number) : s.version;
      parts.push(mqttPacket.generate(p as unknown as Packet, { protocolVersion: version as 3 | 4 | 5 }));
    } catch {
      // not encodable (mqtt-packet's own checks): the mutations below make the malformed ones
    }
  }
  const bytes = [...Buffer.concat(parts)];
  for (const m of s.mutations) {
    if (bytes.length === 0) break;
    const i = m.at % bytes.length;
    if (m.op === "flip") bytes[i] = bytes[i]! ^ (1 << m.byte % 8);
    else if (m.op === "insert") bytes.splice(i, 0, m.byte);
    else if (m.op === "delete") bytes.splice(i, 1);
    else bytes[i] = m.byte;
  }
  return Buffer.from(bytes);
}

/** Sends the bytes, then closes our side; resolves with whether the broker closed the connection in time. */
function exchange(url: string, bytes: Buffer, closeWithinMs: number): Promise<{ closedByUs: boolean; closed: boolean }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = createConnection({ host: hostname, port: Number(port) });
    let endedAt = 0;
    const finish = (closed: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ closedByUs: endedAt > 0, closed });
    };
    const timer = setTimeout(() => finish(false), 1_000 + closeWithinMs);
    socket.on("connect", () => {
      socket.write(bytes);
      // Stay a moment to read what comes back, then go away like a client that dropped off.
      setTimeout(() => {
        endedAt = Date.now();
        socket.end();
      }, 200);
    });
    socket.on("data", () => {});
    socket.on("error", () => finish(true));
    socket.on("close", () => finish(true));
  });
}

/** The broker still serves: a fresh client subscribes, publishes at QoS 1 and gets its message. */
async function stillServes(run: number): Promise<void> {
  await using c = await connectMqtt(app.mqttUrl, { clientId: `probe-${run}`, clean: true });
  await c.subscribe(`probe/${run}`, 1);
  await c.client.publishAsync(`probe/${run}`, "ok", { qos: 1 });
  expect((await c.next((m) => m.topic === `probe/${run}`, 3_000)).payload.toString()).toBe("ok");
}

test("generated packet sequences, mutated byte by byte: each connection served or closed, the broker still serving", async () => {
  let run = 0;
  const runs = await checkProperty("mqtt-packets", { runs: 300, ms: 20_000 }, [session], async (s) => {
    const result = await exchange(app.mqttUrl, bytesOf(s), 3_000);
    expect(app.proc.exitCode, `the process exited; log:\n${app.log().slice(-3000)}`).toBeNull();
    expect(result.closed, "the connection closed once the client was gone").toBe(true);
    await stillServes(++run);
  });
  expect(runs).toBeGreaterThan(20);
}, 60_000);

// ——— floods ———

/** [MQTT-4.7.1-2] [MQTT-4.7.1-3]: does `filter` match `topic`? The test's own oracle. */
function matches(filter: string, topic: string): boolean {
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

const floodLevel = fc.constantFrom("a", "b", "c");
const flood = fc.record({
  filter: fc.array(fc.constantFrom("a", "b", "c", "+", "+", "#"), { minLength: 1, maxLength: 4 }).map((l) => {
    const i = l.indexOf("#");
    return (i < 0 ? l : l.slice(0, i + 1)).join("/");
  }),
  subQos: qos,
  pubQos: qos,
  topics: fc.array(fc.array(floodLevel, { minLength: 1, maxLength: 4 }).map((l) => l.join("/")), { minLength: 1, maxLength: 5 }),
  count: fc.integer({ min: 1, max: 400 }),
  payloadBytes: fc.integer({ min: 0, max: 4_096 }),
});

test("generated floods at every QoS: every acknowledged QoS 1 and 2 message reaches a matching subscription, QoS 2 exactly once", async () => {
  let run = 0;
  const runs = await checkProperty("mqtt-floods", { runs: 60, ms: 20_000 }, [flood], async (f) => {
    const prefix = `flood/${++run}`;
    await using sub = await connectMqtt(app.mqttUrl, { clientId: `flood-sub-${run}`, clean: true });
    await using pub = await connectMqtt(app.mqttUrl, { clientId: `flood-pub-${run}`, clean: true });
    await sub.subscribe(`${prefix}/${f.filter}`, f.subQos);
    const payload = Buffer.alloc(f.payloadBytes, 7);
    const acked: string[] = [];
    await Promise.all(
      Array.from({ length: f.count }, async (_, i) => {
        const topic = `${prefix}/${f.topics[i % f.topics.length]}`;
        await pub.client.publishAsync(topic, Buffer.concat([Buffer.from(`${i}:`), payload]), { qos: f.pubQos });
        if (f.pubQos > 0 && f.subQos > 0 && matches(f.filter, f.topics[i % f.topics.length]!)) acked.push(String(i));
      }),
    );
    expect(app.proc.exitCode).toBeNull();
    if (acked.length === 0) return;
    const want = new Set(acked);
    const got = () => sub.received.filter((m) => want.has(m.payload.toString().split(":")[0]!));
    const deadline = Date.now() + 10_000;
    while (new Set(got().map((m) => m.payload.toString().split(":")[0])).size < want.size && Date.now() < deadline) await Bun.sleep(20);
    const ids = got().map((m) => m.payload.toString().split(":")[0]);
    expect(new Set(ids).size, `acknowledged messages delivered (filter ${f.filter})`).toBe(want.size);
    if (f.pubQos === 2 && f.subQos === 2) expect(ids.length, "QoS 2: once").toBe(want.size);
  });
  expect(runs).toBeGreaterThan(5);
}, 60_000);

const offline = fc.record({
  subQos: fc.constantFrom(1 as const, 2 as const),
  pubQos: fc.constantFrom(1 as const, 2 as const),
  count: fc.integer({ min: 1, max: 300 }),
  payloadBytes: fc.integer({ min: 0, max: 2_048 }),
});

test("generated floods to a persistent session while it is away: every acknowledged message arrives once it is back, and not again after another resume", async () => {
  let run = 0;
  const runs = await checkProperty("mqtt-offline", { runs: 30, ms: 20_000 }, [offline], async (f) => {
    const topic = `offline/${++run}`;
    const clientId = `offline-sub-${run}`;
    const options = { clientId, clean: false } as const;
    {
      await using sub = await connectMqtt(app.mqttUrl, options);
      await sub.subscribe(topic, f.subQos);
    }
    {
      await using pub = await connectMqtt(app.mqttUrl, { clientId: `offline-pub-${run}`, clean: true });
      const payload = Buffer.alloc(f.payloadBytes, 1);
      await Promise.all(Array.from({ length: f.count }, (_, i) => pub.client.publishAsync(topic, Buffer.concat([Buffer.from(`${i}:`), payload]), { qos: f.pubQos })));
    }
    const ids = (received: Array<{ payload: Buffer }>) => received.map((m) => m.payload.toString().split(":")[0]);
    {
      await using sub = await connectMqtt(app.mqttUrl, options);
      const deadline = Date.now() + 10_000;
      while (new Set(ids(sub.received)).size < f.count && Date.now() < deadline) await Bun.sleep(20);
      expect(new Set(ids(sub.received)).size, "every acknowledged message").toBe(f.count);
      if (f.pubQos === 2 && f.subQos === 2) expect(sub.received.length, "QoS 2: once").toBe(f.count);
    }
    // [MQTT-4.3.3-1] [MQTT-4.4.0-1] A drained session resends nothing at the next resume.
    await using again = await connectMqtt(app.mqttUrl, options);
    await again.subscribe(`${topic}/end`, 1);
    await again.client.publishAsync(`${topic}/end`, "x", { qos: 1 });
    await again.next((m) => m.topic === `${topic}/end`);
    expect(again.received.filter((m) => m.topic === topic).length, "nothing resent").toBe(0);
  });
  expect(runs).toBeGreaterThan(3);
}, 60_000);
