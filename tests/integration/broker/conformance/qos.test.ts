/** MQTT 3.1.1 §4.3 QoS 1 and 2 flows, §4.4 redelivery, §4.6 ordering, both ways, on a real platform. */
import { describe, expect, test } from "bun:test";
import { inside } from "../../../helpers/boot";
import { uniqueId, useBroker } from "../../../helpers/raw-mqtt";

type StoreFn = (...args: never[]) => Promise<unknown>;

const broker = useBroker();
const fresh = (root: string) => `${root}/${uniqueId()}`;

describe("client to broker", () => {
  test("[MQTT-4.3.2-2] a QoS 1 PUBLISH is acknowledged by a PUBACK with its packet identifier", async () => {
    const c = await broker.session();
    c.send({ cmd: "publish", topic: fresh("qos/puback"), payload: "x", qos: 1, messageId: 513 });
    expect((await c.next("puback")).messageId).toBe(513);
  });

  test("[MQTT-4.3.2-2] after PUBACK, a PUBLISH with the same packet identifier is a new message", async () => {
    const topic = fresh("qos/q1-again");
    const sub = await broker.subscriber(topic, 1);
    const c = await broker.session();
    for (const payload of ["one", "two"]) {
      c.send({ cmd: "publish", topic, payload, qos: 1, messageId: 7 });
      await c.next("puback");
    }
    const got = [await sub.next("publish"), await sub.next("publish")];
    expect(got.map((p) => p.payload.toString())).toEqual(["one", "two"]);
  });

  test("[MQTT-4.3.3-2] QoS 2: PUBREC, a resent PUBLISH before PUBREL is acknowledged again and not delivered twice, PUBREL gets PUBCOMP", async () => {
    const topic = fresh("qos/q2-in");
    const sub = await broker.subscriber(topic, 2);
    const c = await broker.session();
    c.send({ cmd: "publish", topic, payload: "exactly once", qos: 2, messageId: 99 });
    expect((await c.next("pubrec")).messageId).toBe(99);
    c.send({ cmd: "publish", topic, payload: "exactly once", qos: 2, messageId: 99, dup: true });
    expect((await c.next("pubrec")).messageId).toBe(99);
    c.send({ cmd: "pubrel", messageId: 99 });
    expect((await c.next("pubcomp")).messageId).toBe(99);

    const got = await sub.next("publish");
    expect(got.payload.toString()).toBe("exactly once");
    sub.send({ cmd: "pubrec", messageId: got.messageId! });
    // Each PUBREC went out after its PUBLISH was handled: a second copy would have been written to sub by then.
    await sub.nothing("publish");
  });

  test("[MQTT-4.3.3-2] after PUBCOMP, a PUBLISH with the same packet identifier is a new message", async () => {
    const topic = fresh("qos/q2-again");
    const sub = await broker.subscriber(topic, 0);
    const c = await broker.session();
    for (const payload of ["first", "second"]) {
      c.send({ cmd: "publish", topic, payload, qos: 2, messageId: 11 });
      await c.next("pubrec");
      c.send({ cmd: "pubrel", messageId: 11 });
      await c.next("pubcomp");
    }
    const got = [await sub.next("publish"), await sub.next("publish")];
    expect(got.map((p) => p.payload.toString())).toEqual(["first", "second"]);
  });

  test("[MQTT-4.3.3-2] a PUBREL for an unknown packet identifier still gets its PUBCOMP", async () => {
    const c = await broker.session();
    c.send({ cmd: "pubrel", messageId: 4321 });
    expect((await c.next("pubcomp")).messageId).toBe(4321);
  });
});

describe("broker to client", () => {
  test("[MQTT-4.3.2-1] [MQTT-2.3.1-1] QoS 1: a PUBLISH with a non-zero packet identifier and DUP 0, done once acknowledged", async () => {
    const topic = fresh("qos/q1-out");
    const sub = await broker.subscriber(topic, 1);
    const pub = await broker.session();
    const handed = broker.published((p) => p.topic === topic);
    pub.send({ cmd: "publish", topic, payload: "ack me", qos: 1, messageId: 1 });
    const got = await sub.next("publish");
    expect([got.qos, got.dup, got.messageId! > 0]).toEqual([1, false, true]);
    sub.send({ cmd: "puback", messageId: got.messageId! });
    await handed;
    await sub.nothing("publish");
  });

  test("[MQTT-4.3.3-1] QoS 2: PUBLISH, then a PUBREL with the same packet identifier once the client sent PUBREC", async () => {
    const topic = fresh("qos/q2-out");
    const sub = await broker.subscriber(topic, 2);
    const pub = await broker.session();
    pub.send({ cmd: "publish", topic, payload: "twice acked", qos: 2, messageId: 1 });
    const got = await sub.next("publish");
    expect([got.qos, got.dup]).toEqual([2, false]);
    sub.send({ cmd: "pubrec", messageId: got.messageId! });
    expect((await sub.next("pubrel")).messageId).toBe(got.messageId!);
    const acked = broker.acked(sub.clientId);
    sub.send({ cmd: "pubcomp", messageId: got.messageId! });
    await acked;
    await sub.nothing("pubrel");
  });

  test("[MQTT-4.6.0-5] [MQTT-4.6.0-6] messages from one client on one topic reach a subscriber in the order they were published", async () => {
    const topic = fresh("qos/order");
    const sub = await broker.subscriber(topic, 1);
    const pub = await broker.session();
    const n = 50;
    for (let i = 0; i < n; i++) pub.send({ cmd: "publish", topic, payload: String(i), qos: 1, messageId: i + 1 });
    const got: string[] = [];
    for (let i = 0; i < n; i++) {
      const p = await sub.next("publish");
      got.push(p.payload.toString());
      sub.send({ cmd: "puback", messageId: p.messageId! });
    }
    expect(got).toEqual(Array.from({ length: n }, (_, i) => String(i)));
  });
});

describe("redelivery when a session resumes", () => {
  test("[MQTT-4.4.0-1] [MQTT-3.3.1-1] [MQTT-4.6.0-1] unacknowledged QoS 1 PUBLISH packets are resent in order, with their packet identifiers and DUP 1", async () => {
    const clientId = uniqueId("redeliver");
    const topic = fresh("qos/redeliver");
    const sub = await broker.subscriber(topic, 1, { clientId, clean: false });
    const pub = await broker.session();
    for (const payload of ["a", "b", "c"]) pub.send({ cmd: "publish", topic, payload, qos: 1, messageId: 1 });
    const sent = [await sub.next("publish"), await sub.next("publish"), await sub.next("publish")];
    const acked = broker.acked(clientId);
    sub.send({ cmd: "puback", messageId: sent[1]!.messageId! }); // "b" is done
    await acked;
    sub.destroy();

    const again = await broker.session({ clientId, clean: false });
    expect(again.connack.sessionPresent).toBe(true);
    const resent = [await again.next("publish"), await again.next("publish")];
    expect(resent.map((p) => [p.payload.toString(), p.messageId, p.dup])).toEqual([
      ["a", sent[0]!.messageId, true],
      ["c", sent[2]!.messageId, true],
    ]);
    for (const p of resent) again.send({ cmd: "puback", messageId: p.messageId! });
    await again.nothing("publish");
  });

  test("[MQTT-4.4.0-1] an unacknowledged PUBREL is resent with its packet identifier, and the PUBLISH is not [MQTT-4.3.3-1]", async () => {
    const clientId = uniqueId("pubrel");
    const topic = fresh("qos/pubrel");
    const sub = await broker.subscriber(topic, 2, { clientId, clean: false });
    const pub = await broker.session();
    pub.send({ cmd: "publish", topic, payload: "x", qos: 2, messageId: 1 });
    const got = await sub.next("publish");
    sub.send({ cmd: "pubrec", messageId: got.messageId! });
    await sub.next("pubrel");
    sub.destroy();

    const again = await broker.session({ clientId, clean: false });
    expect((await again.next("pubrel")).messageId).toBe(got.messageId!);
    const acked = broker.acked(clientId);
    again.send({ cmd: "pubcomp", messageId: got.messageId! });
    await acked;
    await again.nothing("publish");
  });

  test("[MQTT-2.3.1-4] a resumed session's new messages get packet identifiers its unacknowledged ones do not use", async () => {
    const clientId = uniqueId("ids");
    const topic = fresh("qos/ids");
    const sub = await broker.subscriber(topic, 1, { clientId, clean: false });
    const pub = await broker.session();
    const publish = async (payload: string) => {
      pub.send({ cmd: "publish", topic, payload, qos: 1, messageId: 1 });
      await pub.next("puback");
    };
    for (const payload of ["a", "b", "c"]) await publish(payload);
    const unacknowledged = [await sub.next("publish"), await sub.next("publish"), await sub.next("publish")];
    await sub.disconnect();
    for (const payload of ["d", "e", "f"]) await publish(payload);

    // The next connection's numbering starts (as aedes starts it at random) at the first identifier in use.
    const random = Math.random;
    Math.random = () => (unacknowledged[0]!.messageId! - 0.5) / 65535;
    let again;
    try {
      again = await broker.session({ clientId, clean: false });
    } finally {
      Math.random = random;
    }
    const got = [];
    for (let i = 0; i < 6; i++) got.push(await again.next("publish"));
    expect(got.map((p) => p.payload.toString())).toEqual(["a", "b", "c", "d", "e", "f"]);
    expect(got.slice(0, 3).map((p) => p.messageId)).toEqual(unacknowledged.map((p) => p.messageId));
    expect(new Set(got.map((p) => p.messageId)).size).toBe(6);
    const acked = broker.acked(clientId, got.length);
    for (const p of got) again.send({ cmd: "puback", messageId: p.messageId! });
    await acked;
    await again.disconnect();
    const third = await broker.session({ clientId, clean: false });
    await third.nothing("publish");
  });

  test("[MQTT-3.3.1-3] a message queued while the client was offline is a first delivery: DUP 0", async () => {
    const clientId = uniqueId("queued");
    const topic = fresh("qos/queued");
    const first = await broker.subscriber(topic, 1, { clientId, clean: false });
    await first.disconnect();
    const pub = await broker.session();
    pub.send({ cmd: "publish", topic, payload: "while away", qos: 1, messageId: 1 });
    await pub.next("puback");

    const again = await broker.session({ clientId, clean: false });
    const got = await again.next("publish");
    expect([got.payload.toString(), got.dup]).toEqual(["while away", false]);
    // Not acknowledged: the next resume sends it again, now as a resend.
    again.destroy();
    const third = await broker.session({ clientId, clean: false });
    const resent = await third.next("publish");
    expect([resent.payload.toString(), resent.messageId, resent.dup]).toEqual(["while away", got.messageId, true]);
  });
});

describe("a drained persistent queue of QoS 2 messages", () => {
  /**
   * [MQTT-4.3.3-1] Messages queued for an offline persistent session, each completed PUBLISH, PUBREC,
   * PUBREL, PUBCOMP after the session resumes (all PUBRECs sent before the first PUBCOMP, as a client
   * does that reads ahead): none is sent again at the next resume.
   */
  async function drainQueued(count: number) {
    const clientId = uniqueId("q2-drain");
    const topic = fresh("qos/q2-drain");
    const first = await broker.subscriber(topic, 2, { clientId, clean: false });
    await first.disconnect();
    const pub = await broker.session();
    for (let i = 0; i < count; i++) {
      pub.send({ cmd: "publish", topic, payload: `m${i}`, qos: 2, messageId: i + 1 });
      await pub.next("pubrec");
      pub.send({ cmd: "pubrel", messageId: i + 1 });
      await pub.next("pubcomp");
    }

    const again = await broker.session({ clientId, clean: false });
    const got = [];
    for (let i = 0; i < count; i++) got.push(await again.next("publish"));
    expect(got.map((p) => [p.payload.toString(), p.dup])).toEqual(Array.from({ length: count }, (_, i) => [`m${i}`, false]));
    for (const p of got) again.send({ cmd: "pubrec", messageId: p.messageId! });
    const pubrels = [];
    for (let i = 0; i < count; i++) pubrels.push((await again.next("pubrel")).messageId);
    expect(pubrels).toEqual(got.map((p) => p.messageId));
    const acked = broker.acked(clientId, pubrels.length);
    for (const id of pubrels) again.send({ cmd: "pubcomp", messageId: id! });
    await acked;
    await again.disconnect();

    const third = await broker.session({ clientId, clean: false });
    expect(third.connack.sessionPresent).toBe(true);
    await third.nothing("publish");
    await third.nothing("pubrel");
  }

  for (const count of [2, 3, 5]) {
    test(`[MQTT-4.3.3-1] ${count} queued QoS 2 messages, each completed: none is sent again when the session resumes`, () => drainQueued(count));
  }
});

describe("acknowledged once stored", () => {
  /**
   * Holds the broker store's `method` until the returned release() is called: what the broker answers
   * meanwhile was answered before the message was stored. Once `held` resolves, an acknowledgement
   * sent ahead of the store (aedes writes its PUBACK first, then publishes) has been written, so a
   * nothing() then, whose PINGREQ the broker answers while the PUBLISH waits, sees it.
   */
  function holdStore(method: "outgoingEnqueueCombi" | "storeRetained" | "incomingStorePacket"): { held: Promise<void>; release(): void; [Symbol.dispose](): void } {
    const store = (inside(broker.booted).aedes as unknown as { persistence: Record<string, StoreFn> }).persistence;
    const original = store[method]!;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let heldNow!: () => void;
    const held = new Promise<void>((resolve) => (heldNow = resolve));
    store[method] = function (this: unknown, ...args: never[]) {
      heldNow();
      return gate.then(() => original.apply(this, args));
    } as StoreFn;
    return { held, release, [Symbol.dispose]: () => void (store[method] = original) };
  }

  test("[MQTT-4.3.2-2] a QoS 1 PUBLISH for an offline persistent session gets its PUBACK only once queued for it", async () => {
    const clientId = uniqueId("q1-stored");
    const topic = fresh("qos/q1-stored");
    const sub = await broker.subscriber(topic, 1, { clientId, clean: false });
    await sub.disconnect();
    const pub = await broker.session();
    using store = holdStore("outgoingEnqueueCombi");
    pub.send({ cmd: "publish", topic, payload: "keep me", qos: 1, messageId: 21 });
    await store.held;
    await pub.nothing("puback");
    store.release();
    expect((await pub.next("puback")).messageId).toBe(21);
    const again = await broker.session({ clientId, clean: false });
    expect((await again.next("publish")).payload.toString()).toBe("keep me");
  });

  test("[MQTT-4.3.2-2] a retained QoS 1 PUBLISH gets its PUBACK only once the retained message is stored", async () => {
    const topic = fresh("qos/q1-retained");
    const pub = await broker.session();
    using store = holdStore("storeRetained");
    pub.send({ cmd: "publish", topic, payload: "last value", qos: 1, retain: true, messageId: 22 });
    await store.held;
    await pub.nothing("puback");
    store.release();
    await pub.next("puback");
    const sub = await broker.subscriber(topic, 1);
    expect((await sub.next("publish")).payload.toString()).toBe("last value");
  });

  test("[MQTT-4.3.3-2] a QoS 2 PUBLISH gets its PUBREC only once stored", async () => {
    const pub = await broker.session();
    using store = holdStore("incomingStorePacket");
    pub.send({ cmd: "publish", topic: fresh("qos/q2-stored"), payload: "x", qos: 2, messageId: 23 });
    await store.held;
    await pub.nothing("pubrec");
    store.release();
    expect((await pub.next("pubrec")).messageId).toBe(23);
  });

  /**
   * A message is numbered (its broker counter) when its publish starts and reaches subscribers once
   * stored. While `waiting` is held there, another client's message, numbered after it, reaches a
   * subscriber whose two filters both match each: the waiting one must still reach it, and each once
   * [MQTT-3.3.5-1] (a higher-numbered message seen earlier is no sign of a copy).
   */
  async function overtaken(waiting: { qos: 0 | 1; retain: boolean; hold: "storeRetained" | "outgoingEnqueueCombi" }, overtakingQoS: 0 | 1) {
    const root = fresh("qos/overtaken");
    const [a, b] = [`${root}/a`, `${root}/b`];
    const sub = await broker.session();
    sub.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: `${root}/#`, qos: 1 }, { topic: `${root}/+`, qos: 1 }] });
    await sub.next("suback");
    if (waiting.hold === "outgoingEnqueueCombi") {
      // A persistent session the waiting message is queued for (and so acknowledged once queued).
      const offline = await broker.subscriber(a, 1, { clientId: uniqueId("overtaken"), clean: false });
      await offline.disconnect();
    }
    const first = await broker.session();
    const second = await broker.session();
    const delivered = broker.published((p) => p.topic === a);
    {
      using store = holdStore(waiting.hold);
      first.send({ cmd: "publish", topic: a, payload: "waited", qos: waiting.qos, retain: waiting.retain, messageId: waiting.qos ? 1 : undefined });
      await store.held;
      const overtaking = broker.published((p) => p.topic === b);
      second.send({ cmd: "publish", topic: b, payload: "overtook", qos: overtakingQoS, messageId: overtakingQoS ? 1 : undefined });
      await overtaking;
      expect((await sub.next("publish")).topic).toBe(b);
      store.release();
    }
    if (waiting.qos === 1) expect((await first.next("puback")).messageId).toBe(1);
    await delivered;
    await sub.ping();
    expect(sub.received.filter((p) => p.cmd === "publish").map((p) => [(p as { topic: string }).topic, (p as { qos: number }).qos])).toEqual([
      [b, overtakingQoS],
      [a, waiting.qos],
    ]);
  }

  test("[MQTT-4.3.2-2] a retained QoS 1 message that waited for the store still reaches a subscriber another client's QoS 0 message reached meanwhile", () =>
    overtaken({ qos: 1, retain: true, hold: "storeRetained" }, 0));

  test("[MQTT-4.3.2-2] a retained QoS 1 message that waited for the store still reaches a subscriber another client's QoS 1 message reached meanwhile", () =>
    overtaken({ qos: 1, retain: true, hold: "storeRetained" }, 1));

  test("[MQTT-4.3.2-2] a QoS 1 message that waited to be queued for a persistent session still reaches a connected subscriber another client's message reached meanwhile", () =>
    overtaken({ qos: 1, retain: false, hold: "outgoingEnqueueCombi" }, 0));

  test("[MQTT-3.3.5-1] a retained QoS 0 message that waited for the store still reaches a subscriber another client's QoS 1 message reached meanwhile", () =>
    overtaken({ qos: 0, retain: true, hold: "storeRetained" }, 1));

  test("[MQTT-4.3.2-2] each of a burst of QoS 1 PUBLISH packets is acknowledged once and delivered once", async () => {
    const topic = fresh("qos/q1-burst");
    const sub = await broker.subscriber(topic, 0);
    const pub = await broker.session();
    const n = 200;
    const handed = broker.published((p) => p.topic === topic, n);
    for (let i = 1; i <= n; i++) pub.send({ cmd: "publish", topic, payload: String(i), qos: 1, messageId: i });
    const acked = [];
    for (let i = 1; i <= n; i++) acked.push((await pub.next("puback")).messageId);
    expect(acked.sort((a, b) => a! - b!)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    const got = [];
    for (let i = 1; i <= n; i++) got.push((await sub.next("publish")).payload.toString());
    expect(got).toEqual(Array.from({ length: n }, (_, i) => String(i + 1)));
    await handed;
    await sub.nothing("publish");
    await pub.nothing("puback");
  });
});
