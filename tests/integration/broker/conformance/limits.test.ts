/**
 * Malformed packets and packet size (broker.maxPacketBytes): the offending client is disconnected
 * [MQTT-4.8.0-1] and the broker goes on serving everyone else, over TCP and over WebSocket.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { connectMqtt, type TestClient } from "../../../helpers/mqtt";
import { frame, str, uniqueId, useBroker } from "../../../helpers/raw-mqtt";

const MAX = 4096;
const broker = useBroker({ broker: { maxPacketBytes: MAX } });
const mqttClients: TestClient[] = [];
afterAll(async () => {
  await Promise.all(mqttClients.map((c) => c.end()));
});

/** Another client still gets a message through the broker. */
async function brokerStillServes(): Promise<void> {
  const topic = `limits/alive/${uniqueId()}`;
  const sub = await broker.subscriber(topic, 1);
  const pub = await broker.session();
  pub.send({ cmd: "publish", topic, payload: "still serving", qos: 1, messageId: 1 });
  await pub.next("puback");
  expect((await sub.next("publish")).payload.toString()).toBe("still serving");
}

/** A PUBLISH packet of exactly `size` bytes (fixed header included). */
function publishOfSize(topic: string, size: number): Buffer {
  for (let lengthBytes = 1; lengthBytes <= 4; lengthBytes++) {
    const packet = frame(0x30, str(topic), Buffer.alloc(size - 1 - lengthBytes - 2 - Buffer.byteLength(topic), "x"));
    if (packet.length === size) return packet;
  }
  throw new Error(`no PUBLISH of ${size} bytes`);
}

describe("broker.maxPacketBytes", () => {
  test("a packet of exactly the limit is accepted", async () => {
    const topic = `limits/exact/${uniqueId()}`;
    const sub = await broker.subscriber(topic);
    const pub = await broker.session();
    const packet = publishOfSize(topic, MAX);
    pub.sendBytes(packet);
    expect((await sub.next("publish")).payload.length).toBe(MAX - 3 - 2 - topic.length);
    expect(pub.closed).toBe(false);
  });

  test("a PUBLISH over the limit disconnects its client (as a failure: the will is published); it reaches nobody, others are served", async () => {
    const topic = `limits/over/${uniqueId()}`;
    const willTopic = `limits/will/${uniqueId()}`;
    const sub = await broker.subscriber(topic);
    const willSub = await broker.subscriber(willTopic);
    const pub = await broker.session({ will: { topic: willTopic, payload: Buffer.from("too big"), qos: 0, retain: false } });
    pub.sendBytes(publishOfSize(topic, MAX + 1));
    await pub.waitClosed();
    expect((await willSub.next("publish")).payload.toString()).toBe("too big");
    // Had the broker taken the PUBLISH (QoS 0: it reaches the emitter as it is read), the emitter would
    // have had it before the will, published at the close, and it delivers in that order.
    await sub.nothing("publish");
    await brokerStillServes();
  });

  test("the size is judged from the fixed header: a client announcing 256 MB is disconnected before sending it", async () => {
    const c = await broker.session();
    c.sendBytes([0x30, 0xff, 0xff, 0xff, 0x7f]);
    await c.waitClosed(1_000);
    await brokerStillServes();
  });

  test("over WebSocket too (MQTT.js)", async () => {
    const client = await connectMqtt(broker.booted.wsUrl, { wsOptions: { protocol: "mqtt" } } as object);
    mqttClients.push(client);
    const closed = new Promise<void>((resolve) => client.client.once("close", () => resolve()));
    client.client.publish(`limits/ws/${uniqueId()}`, Buffer.alloc(MAX * 2, "w"), { qos: 0 });
    await closed;
    await brokerStillServes();
  });
});

describe("malformed packets", () => {
  const cases: Array<[string, Buffer | number[]]> = [
    ["[MQTT-2.2.2-2] reserved packet type 0", [0x00, 0x00]],
    ["[MQTT-2.2.2-2] reserved packet type 15", [0xf0, 0x00]],
    ["[MQTT-2.2.2-2] PUBACK with flags set", [0x41, 0x02, 0x00, 0x01]],
    ["[MQTT-3.6.1-1] PUBREL without its 0010 flags", [0x60, 0x02, 0x00, 0x01]],
    ["[MQTT-2.2.2-2] PINGREQ with flags set", [0xc1, 0x00]],
    ["PINGREQ with a body", [0xc0, 0x01, 0x00]],
    ["PUBACK of 3 bytes", [0x40, 0x03, 0x00, 0x01, 0x00]],
    ["a remaining length of five bytes", [0x30, 0xff, 0xff, 0xff, 0xff, 0x01]],
    ["a topic length beyond the end of the packet", frame(0x30, [0x00, 0x10], Buffer.from("short"))],
    ["a packet only a server sends (CONNACK)", [0x20, 0x02, 0x00, 0x00]],
    ["a packet only a server sends (SUBACK)", [0x90, 0x03, 0x00, 0x01, 0x00]],
    ["a packet only a server sends (PINGRESP)", [0xd0, 0x00]],
  ];
  for (const [what, bytes] of cases) {
    test(`[MQTT-4.8.0-1] ${what}: the client is disconnected, the broker serves the others`, async () => {
      const c = await broker.session();
      c.sendBytes(bytes);
      await c.waitClosed();
      expect(c.received.map((p) => p.cmd)).toEqual(["connack"]);
      await brokerStillServes();
    });
  }

  test("[MQTT-4.8.0-1] a client disconnected for a bad packet leaves the sessions of others intact", async () => {
    const topic = `limits/others/${uniqueId()}`;
    const bystander = await broker.subscriber(topic, 1);
    const bad = await broker.session();
    bad.sendBytes(frame(0x30, str("limits/\u0000"), Buffer.from("x")));
    await bad.waitClosed();
    const pub = await broker.session();
    pub.send({ cmd: "publish", topic, payload: "after the bad one", qos: 1, messageId: 1 });
    expect((await bystander.next("publish")).payload.toString()).toBe("after the bad one");
  });
});
