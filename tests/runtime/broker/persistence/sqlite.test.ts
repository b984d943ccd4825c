/**
 * The SQLite persistence beyond aedes-persistence's contract (that runs in
 * contract.test.ts): state found intact after closing and
 * reopening the file and after a kill -9, bounded queues, retained lookups
 * by filter scope, packets that round-trip with their MQTT 5 properties.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { Readable } from "node:stream";
import { filterScope } from "../../../../runtime/broker/persistence/filters";
import { SqlitePersistence } from "../../../../runtime/broker/persistence/sqlite";
import { tempDir } from "../../../helpers/tmp";

const dir = tempDir("plinth-broker-persistence");
afterAll(() => dir[Symbol.dispose]());
let files = 0;
const BROKER = { id: "broker-1" };

async function open(file = dir.join(`${++files}.sqlite`), maxQueuedPerClient?: number, broker = BROKER) {
  const p = new SqlitePersistence({ file, maxQueuedPerClient });
  await p.setup(broker);
  return p;
}

async function all<T = Record<string, unknown>>(stream: Readable): Promise<T[]> {
  const out: T[] = [];
  for await (const item of stream) out.push(item as T);
  return out;
}

const publish = (topic: string, payload: string, counter: number, extra: object = {}) => ({
  cmd: "publish",
  topic,
  payload: Buffer.from(payload),
  qos: 1,
  retain: false,
  dup: false,
  brokerId: BROKER.id,
  brokerCounter: counter,
  ...extra,
});
const text = (packets: Array<Record<string, unknown>>) => packets.map((p) => String(p.payload));

describe("state survives closing and reopening the file", () => {
  test("retained messages, sessions with their subscriptions, queues, in-flight QoS 2 and wills", async () => {
    const file = dir.join("reopen.sqlite");
    const a = await open(file);
    await a.storeRetained({ ...publish("rooms/1/temp", "21.5", 1), retain: true });
    await a.addSubscriptions({ id: "dev-1" }, [
      { topic: "rooms/+/temp", qos: 1 },
      { topic: "alerts/#", qos: 2, subscriptionIdentifier: 7 },
      { topic: "debug", qos: 0 },
    ]);
    await a.outgoingEnqueueCombi([{ clientId: "dev-1" }], publish("rooms/1/temp", "q1", 2));
    await a.outgoingEnqueueCombi([{ clientId: "dev-1" }], publish("rooms/2/temp", "q2", 3));
    await a.outgoingEnqueueCombi([{ clientId: "dev-1" }], { ...publish("alerts/x", "q3", 4), qos: 2 });
    // q1 in flight as message 10; q3 (QoS 2) delivered and answered with PUBREC: now a pubrel for message 11.
    await a.outgoingUpdate({ id: "dev-1" }, { ...publish("rooms/1/temp", "q1", 2), messageId: 10 });
    await a.outgoingUpdate({ id: "dev-1" }, { ...publish("alerts/x", "q3", 4), qos: 2, messageId: 11 });
    await a.outgoingUpdate({ id: "dev-1" }, { cmd: "pubrel", messageId: 11 });
    await a.incomingStorePacket({ id: "dev-1" }, { ...publish("cmds/reboot", "now", 0), qos: 2, messageId: 5 });
    await a.putWill({ id: "dev-1" }, { topic: "status/dev-1", payload: Buffer.from("gone"), qos: 1, retain: true });
    await a.destroy();
    expect(existsSync(`${file}-wal`)).toBe(false);

    const b = await open(file, undefined, { id: "broker-2" });
    expect(text(await all(b.createRetainedStreamCombi(["rooms/#"])))).toEqual(["21.5"]);
    expect(await b.subscriptionsByClient({ id: "dev-1" })).toEqual([
      { topic: "rooms/+/temp", qos: 1, rh: undefined, rap: undefined, nl: undefined },
      { topic: "alerts/#", qos: 2, rh: undefined, rap: undefined, nl: undefined, subscriptionIdentifier: 7 },
      { topic: "debug", qos: 0, rh: undefined, rap: undefined, nl: undefined },
    ]);
    // The trie was rebuilt from the file: QoS > 0 filters match, the QoS 0 one does not.
    expect((await b.subscriptionsByTopic("rooms/9/temp")).map((s) => s.clientId)).toEqual(["dev-1"]);
    expect(await b.subscriptionsByTopic("debug")).toEqual([]);
    expect(await b.countOffline()).toEqual({ subsCount: 2, clientsCount: 1 });

    const queue = await all(b.outgoingStream({ id: "dev-1" }));
    expect(queue.map((p) => [p.cmd, p.messageId, p.payload === undefined ? null : String(p.payload)])).toEqual([
      ["publish", 10, "q1"],
      ["publish", undefined, "q2"],
      ["pubrel", 11, null],
    ]);
    expect(String((await b.incomingGetPacket({ id: "dev-1" }, { messageId: 5 })).payload)).toBe("now");
    const will = await b.getWill({ id: "dev-1" });
    expect(will).toMatchObject({ topic: "status/dev-1", clientId: "dev-1", brokerId: "broker-1", retain: true });
    // The old broker's will is one aedes's will sweep publishes: broker-1 is not alive any more.
    expect((await all(b.streamWill({ "broker-2": Date.now() }))).map((w) => w.clientId)).toEqual(["dev-1"]);

    // The PUBACK for message 10 and the PUBCOMP for 11 arrive after the restart.
    expect(String((await b.outgoingClearMessageId({ id: "dev-1" }, { messageId: 10 }))!.payload)).toBe("q1");
    expect((await b.outgoingClearMessageId({ id: "dev-1" }, { messageId: 11 }))!.cmd).toBe("pubrel");
    expect(text(await all(b.outgoingStream({ id: "dev-1" })))).toEqual(["q2"]);
    await b.destroy();
  });

  test("what a process wrote before it was killed with SIGKILL is there", async () => {
    const file = dir.join("killed.sqlite");
    const script = `
      import { SqlitePersistence } from ${JSON.stringify(`${import.meta.dir}/../../../../runtime/broker/persistence/sqlite.ts`)};
      const p = new SqlitePersistence({ file: ${JSON.stringify(file)} });
      await p.setup({ id: "doomed" });
      await p.addSubscriptions({ id: "dev-1" }, [{ topic: "a/#", qos: 1 }]);
      for (let i = 0; i < 100; i++) await p.outgoingEnqueueCombi([{ clientId: "dev-1" }], { cmd: "publish", topic: "a/b", payload: Buffer.from(String(i)), qos: 1, brokerId: "doomed", brokerCounter: i + 1 });
      await p.storeRetained({ cmd: "publish", topic: "a/b", payload: Buffer.from("last"), qos: 1, retain: true });
      process.kill(process.pid, "SIGKILL");
    `;
    const proc = Bun.spawn([process.execPath, "--eval", script], { stdout: "pipe", stderr: "pipe" });
    await proc.exited;
    expect(proc.signalCode).toBe("SIGKILL");
    expect(existsSync(`${file}-wal`)).toBe(true);

    const p = await open(file);
    expect((await p.subscriptionsByTopic("a/b")).map((s) => s.clientId)).toEqual(["dev-1"]);
    const queue = await all(p.outgoingStream({ id: "dev-1" }));
    expect(text(queue)).toEqual(Array.from({ length: 100 }, (_, i) => String(i)));
    expect(text(await all(p.createRetainedStreamCombi(["a/b"])))).toEqual(["last"]);
    await p.destroy();
  });
});

describe("bounded queues", () => {
  test("past maxQueuedPerClient the oldest publishes are dropped and counted, per client", async () => {
    const p = await open(undefined, 3);
    const subs = [{ clientId: "slow" }, { clientId: "other" }];
    for (let i = 1; i <= 5; i++) await p.outgoingEnqueueCombi(i <= 2 ? subs : [subs[0]!], publish("t", `m${i}`, i));
    expect(text(await all(p.outgoingStream({ id: "slow" })))).toEqual(["m3", "m4", "m5"]);
    expect(text(await all(p.outgoingStream({ id: "other" })))).toEqual(["m1", "m2"]);
    expect(p.droppedMessages()).toBe(2);
    await p.destroy();
  });

  test("pubrels awaiting PUBCOMP neither count nor get dropped", async () => {
    const p = await open(undefined, 2);
    await p.outgoingEnqueue({ clientId: "c" }, { ...publish("t", "m1", 1), qos: 2 });
    await p.outgoingUpdate({ id: "c" }, { ...publish("t", "m1", 1), qos: 2, messageId: 1 });
    await p.outgoingUpdate({ id: "c" }, { cmd: "pubrel", messageId: 1 });
    for (let i = 2; i <= 4; i++) await p.outgoingEnqueue({ clientId: "c" }, publish("t", `m${i}`, i));
    const queue = await all(p.outgoingStream({ id: "c" }));
    expect(queue.map((q) => (q.cmd === "pubrel" ? "pubrel" : String(q.payload)))).toEqual(["pubrel", "m3", "m4"]);
    expect(p.droppedMessages()).toBe(1);
    await p.destroy();
  });

  test("a client whose filters overlap gets one copy queued, and a copy aedes chose not to send is cleared", async () => {
    const p = await open();
    await p.outgoingEnqueueCombi([{ clientId: "c" }, { clientId: "c" }], publish("a/b", "once", 1));
    const [queued] = await all(p.outgoingStream({ id: "c" }));
    expect(text([queued!])).toEqual(["once"]);
    // aedes clears a packet it will not forward by the packet itself, which has no message id yet.
    expect(String((await p.outgoingClearMessageId({ id: "c" }, publish("a/b", "once", 1)))!.payload)).toBe("once");
    expect(await all(p.outgoingStream({ id: "c" }))).toEqual([]);
    await p.destroy();
  });

  test("[MQTT-3.8.4-6] [MQTT-3.3.1-9] a queued copy has its subscription's QoS and RETAIN 0 (kept with retain-as-published)", async () => {
    const p = await open();
    const packet = { ...publish("a/b", "x", 1), qos: 2, retain: true };
    await p.outgoingEnqueueCombi(
      [
        { clientId: "low", topic: "a/b", qos: 1 },
        { clientId: "overlap", topic: "a/+", qos: 1 },
        { clientId: "overlap", topic: "a/#", qos: 2 },
        { clientId: "rap", topic: "a/b", qos: 2, rap: true },
      ],
      packet,
    );
    const first = async (id: string) => (await all(p.outgoingStream({ id })))[0]!;
    expect(await first("low")).toMatchObject({ qos: 1, retain: false });
    expect(await first("overlap")).toMatchObject({ qos: 2, retain: false });
    expect(await first("rap")).toMatchObject({ qos: 2, retain: true });
    expect(await all(p.outgoingStream({ id: "overlap" }))).toHaveLength(1);
    await p.destroy();
  });

  test("[MQTT-4.3.3-1] each PUBREL takes the place of its own PUBLISH, also while an earlier PUBREL awaits its PUBCOMP", async () => {
    const p = await open();
    const c = { id: "c" };
    for (let i = 1; i <= 3; i++) await p.outgoingEnqueue({ clientId: "c" }, { ...publish("t", `m${i}`, i), qos: 2 });
    for (let i = 1; i <= 3; i++) await p.outgoingUpdate(c, { ...publish("t", `m${i}`, i), qos: 2, messageId: 100 + i });
    for (let i = 1; i <= 3; i++) await p.outgoingUpdate(c, { cmd: "pubrel", messageId: 100 + i });
    const queued = await all(p.outgoingStream(c));
    expect(queued.map((q) => [q.cmd, q.messageId])).toEqual([["pubrel", 101], ["pubrel", 102], ["pubrel", 103]]);
    for (let i = 1; i <= 3; i++) expect((await p.outgoingClearMessageId(c, { cmd: "pubcomp", messageId: 100 + i }))?.cmd).toBe("pubrel");
    expect(await all(p.outgoingStream(c))).toEqual([]);
    // A PUBREC for a packet identifier the queue does not hold.
    await expect(p.outgoingUpdate(c, { cmd: "pubrel", messageId: 7 })).rejects.toThrow("no such packet");
    await p.destroy();
  });

  test("a stream is the queue as it was when asked for, read in pages", async () => {
    const p = await open();
    for (let i = 0; i < 300; i++) await p.outgoingEnqueue({ clientId: "c" }, publish("t", `m${i}`, i + 1));
    const stream = p.outgoingStream({ id: "c" });
    await p.outgoingEnqueue({ clientId: "c" }, publish("t", "later", 1000));
    const seen = text(await all(stream));
    expect(seen).toHaveLength(300);
    expect(seen.at(-1)).toBe("m299");
    await p.destroy();
  });

  test("JS memory stays flat while offline sessions queue tens of thousands of messages", async () => {
    const p = await open();
    const clients = Array.from({ length: 200 }, (_, i) => `dev-${i}`);
    for (const id of clients) await p.addSubscriptions({ id }, [{ topic: "fleet/#", qos: 1 }]);
    const send = async (from: number, n: number) => {
      for (let i = from; i < from + n; i++) {
        const subs = await p.subscriptionsByTopic("fleet/cmd");
        await p.outgoingEnqueueCombi(subs, publish("fleet/cmd", `command ${i}`, i + 1));
      }
    };
    await send(0, 5);
    Bun.gc(true);
    const before = process.memoryUsage().heapUsed;
    await send(5, 300); // 60,000 queued packets; aedes-persistence's memory queue grows ~10 MB on them
    Bun.gc(true);
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(3 * 1024 * 1024);
    expect(await all(p.outgoingStream({ id: "dev-199" }))).toHaveLength(305);
    await p.destroy();
  }, 30_000);
});

describe("retained lookups", () => {
  test("filter scopes: the topic, the range under the literal prefix, or everything", () => {
    expect(filterScope("a/b")).toEqual({ kind: "exact", topic: "a/b" });
    expect(filterScope("a/+/c")).toEqual({ kind: "under", prefix: "a", withPrefix: false });
    expect(filterScope("a/b/#")).toEqual({ kind: "under", prefix: "a/b", withPrefix: true });
    expect(filterScope("+/b")).toEqual({ kind: "all" });
    expect(filterScope("#")).toEqual({ kind: "all" });
  });

  test("[MQTT-4.7.1-2] [MQTT-4.7.2-1] wildcards match parents and empty levels, not $ topics, and never a neighbour prefix", async () => {
    const p = await open();
    const topics = ["a", "a/", "a/b", "a/b/c", "ab", "a0", "b/a", "$platform/x", "$SYS/y"];
    for (const [i, topic] of topics.entries()) await p.storeRetained({ ...publish(topic, topic, i + 1), retain: true });
    const lookup = async (...filters: string[]) => text(await all(p.createRetainedStreamCombi(filters))).sort();
    expect(await lookup("a/#")).toEqual(["a", "a/", "a/b", "a/b/c"]);
    expect(await lookup("a/+")).toEqual(["a/", "a/b"]);
    expect(await lookup("#")).toEqual(["a", "a/", "a/b", "a/b/c", "a0", "ab", "b/a"]);
    expect(await lookup("+/a")).toEqual(["b/a"]);
    expect(await lookup("$platform/#")).toEqual(["$platform/x"]);
    // Overlapping filters return each message once.
    expect(await lookup("a/#", "a/b", "+/b")).toEqual(["a", "a/", "a/b", "a/b/c"]);
    await p.destroy();
  });

  test("a range longer than a page is read whole, and an empty payload removes the message", async () => {
    const p = await open();
    for (let i = 0; i < 300; i++) await p.storeRetained({ ...publish(`s/${String(i).padStart(3, "0")}`, `v${i}`, i + 1), retain: true });
    expect(await all(p.createRetainedStreamCombi(["s/+"]))).toHaveLength(300);
    await p.storeRetained({ ...publish("s/000", "", 999), payload: Buffer.alloc(0), retain: true });
    expect(await all(p.createRetainedStreamCombi(["s/+"]))).toHaveLength(299);
    await p.destroy();
  });
});

test("packets round-trip with MQTT 5 properties, string payloads and keys set to undefined", async () => {
  const p = await open();
  const properties = {
    correlationData: Buffer.from([0, 1, 2, 255]),
    userProperties: { "\u0000b": "not bytes", trace: ["x", "y"] },
    contentType: "application/json",
    messageExpiryInterval: 60,
  };
  await p.outgoingEnqueue({ clientId: "c" }, publish("t", "", 1, { payload: "as a string", properties, messageExpiry: 1234 }));
  const [got] = await all(p.outgoingStream({ id: "c" }));
  expect(got!.payload).toBe("as a string");
  expect(got!.properties).toEqual(properties);
  expect(Buffer.isBuffer((got!.properties as typeof properties).correlationData)).toBe(true);
  expect(got!.messageExpiry).toBe(1234);
  expect(Object.hasOwn(got!, "messageId") && got!.messageId === undefined).toBe(true);
  await p.destroy();
});

test("destroy closes the file once, leaving no WAL behind, and may be called again", async () => {
  const file = dir.join("destroy.sqlite");
  const p = await open(file);
  await p.storeRetained({ ...publish("x", "y", 1), retain: true });
  await p.destroy();
  await p.destroy();
  expect(existsSync(`${file}-wal`)).toBe(false);
  expect(existsSync(`${file}-shm`)).toBe(false);
});
