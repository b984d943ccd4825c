import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Server } from "bun";
import type { IPublishPacket } from "mqtt";
import { isReservedTopic } from "../../../runtime/broker/acl";
import { startBroker, type Broker } from "../../../runtime/broker/broker";
import type { Bus } from "../../../runtime/bus/bus";
import { WINDOW, localBus } from "../../../runtime/bus/local";
import { encode, type PublishAck } from "../../../runtime/worker/channel";
import { mqttWebSocketHandler, upgradeMqtt, type MqttSocketData } from "../../../runtime/broker/ws";
import { createLogger } from "../../../runtime/log";
import { brokerConfig } from "../../helpers/broker-config";
import * as reports from "../../helpers/broker-reports";
import { connectMqtt, eventually, type TestClient } from "../../helpers/mqtt";

let broker: Broker;
let bus: Bus;
let url: string;
const clients: TestClient[] = [];
let topicSeq = 0;
/** A topic no other test uses, so tests never see each other's messages. */
const fresh = (root = "sensors") => `${root}/t${++topicSeq}-${Date.now().toString(36)}`;

async function client(address = url): Promise<TestClient> {
  const c = await connectMqtt(address);
  clients.push(c);
  return c;
}

/** Every PUBLISH packet a client receives, with its flags. */
function packets(c: TestClient): IPublishPacket[] {
  const seen: IPublishPacket[] = [];
  c.client.on("message", (_topic, _payload, packet) => seen.push(packet));
  return seen;
}

beforeAll(async () => {
  broker = await startBroker(brokerConfig({ websocketPath: "/mqtt", persistence: "memory" }), createLogger({ level: "silent" }));
  bus = localBus(broker.aedes, createLogger({ level: "silent" }));
  url = `mqtt://127.0.0.1:${broker.port}`;
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.end()));
  await broker.close();
});

describe("startBroker", () => {
  test("binds a real port when asked for port 0", () => {
    expect(broker.port).toBeGreaterThan(0);
  });
});

describe("bus → TCP clients", () => {
  test("a subscribed TCP client receives a bus publish with its payload at QoS 1", async () => {
    const topic = fresh();
    const c = await client();
    const seen = packets(c);
    expect(await c.subscribe(topic, 1)).toEqual([1]);

    await bus.publish(topic, JSON.stringify({ temp: 21.5 }));
    const m = await c.next((m) => m.topic === topic);
    expect(m.json()).toEqual({ temp: 21.5 });
    expect(seen).toHaveLength(1);
    expect(seen[0]!.qos).toBe(1);
    expect(seen[0]!.retain).toBe(false);
  });

  test("a Buffer payload arrives byte for byte", async () => {
    const topic = fresh();
    const c = await client();
    await c.subscribe(topic);
    const bytes = Buffer.from([0, 1, 2, 254, 255]);
    await bus.publish(topic, bytes);
    const m = await c.next((m) => m.topic === topic);
    expect(Buffer.compare(m.payload, bytes)).toBe(0);
  });

  test("[MQTT-3.8.4-6] delivery QoS is the minimum of publish QoS and granted QoS", async () => {
    const topic = fresh();
    const c = await client();
    const seen = packets(c);
    expect(await c.subscribe(topic, 0)).toEqual([0]);
    await bus.publish(topic, "x", { qos: 1 });
    await c.next((m) => m.topic === topic);
    expect(seen[0]!.qos).toBe(0);
  });

  test("[MQTT-4.7.2-1] a '#' subscriber does not receive the runtime's $platform publishes", async () => {
    const suffix = fresh("x").replace("/", "-");
    const all = await client();
    await all.subscribe("#");
    const exact = await client();
    await exact.subscribe(`$platform/${suffix}`);
    await bus.publish(`$platform/${suffix}`, "p");
    await bus.publish(`sensors/${suffix}`, "s");
    await exact.next((m) => m.topic === `$platform/${suffix}`);
    await all.next((m) => m.topic === `sensors/${suffix}`);
    expect(all.received.filter((m) => m.topic.startsWith("$"))).toEqual([]);
  });

  test("the runtime may publish into its reserved namespaces", async () => {
    const topic = `$platform/breakers/${fresh("svc").replace("/", "-")}`;
    const c = await client();
    await c.subscribe(topic);
    await bus.publish(topic, "open");
    expect((await c.next((m) => m.topic === topic)).payload.toString()).toBe("open");
  });
});

describe("a worker's batch of many events at once", () => {
  /** The bus serving one end of a new port as service `svc`; the test holds the worker's end. */
  function servedPort(svc: string) {
    const channel = new MessageChannel();
    const stop = bus.serveEvents(channel.port2, svc, null);
    const ack = new Promise<PublishAck>((resolve) => (channel.port1.onmessage = (e) => resolve(e.data as PublishAck)));
    const post = (count: number) =>
      channel.port1.postMessage(encode({ events: Array.from({ length: count }, (_, i) => ({ seq: i + 1, id: `e${i + 1}`, type: "n", time: "t", data: i + 1 })) }));
    return { ack, post, close: () => (stop(), channel.port1.close()) };
  }

  test("published in order, WINDOW at a time, and answered once with every seq taken", async () => {
    const svc = fresh("svc").replace("/", "-");
    const n = WINDOW * 8;
    const got: number[] = [];
    const unsubscribe = await bus.subscribe(`events/${svc}/#`, (_t, payload) => got.push(JSON.parse(payload.toString()).data));
    const port = servedPort(svc);
    port.post(n);
    const ack = await port.ack;
    expect(ack).toEqual({ sent: Array.from({ length: n }, (_, i) => i + 1), unsent: [] });
    expect(got).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    await unsubscribe();
    port.close();
  });

  test("a bus.publish made while a batch is being published waits its turn behind it", async () => {
    const svc = fresh("svc").replace("/", "-");
    const got: string[] = [];
    let last: Promise<void> | undefined;
    const unsubscribe = await bus.subscribe(`events/${svc}/#`, (_t, payload) => {
      // As the first of them arrives, the rest are in aedes or waiting their turn.
      if (got.push(payload.toString()) === 1) last = bus.publish(`events/${svc}/n`, "last");
    });
    const port = servedPort(svc);
    port.post(WINDOW * 2);
    await eventually(() => last !== undefined);
    await last;
    await eventually(() => got.length === WINDOW * 2 + 1);
    expect(got.at(-1)).toBe("last");
    await unsubscribe();
    port.close();
  });
});

describe("TCP clients → bus", () => {
  test("a bus handler receives what a TCP client publishes; not after its unsubscribe resolves", async () => {
    const topic = fresh();
    const sentinelTopic = fresh();
    const got: Array<[string, string]> = [];
    const unsubscribe = await bus.subscribe(topic, (t, payload) => got.push([t, payload.toString()]));
    const sentinel: string[] = [];
    const unsubscribeSentinel = await bus.subscribe(sentinelTopic, (_t, payload) => sentinel.push(payload.toString()));

    const c = await client();
    await c.client.publishAsync(topic, "one", { qos: 1 });
    await eventually(() => got.length === 1);
    expect(got).toEqual([[topic, "one"]]);

    await unsubscribe();
    await c.client.publishAsync(topic, "two", { qos: 1 });
    await c.client.publishAsync(sentinelTopic, "after", { qos: 1 });
    await eventually(() => sentinel.length === 1);
    expect(got).toEqual([[topic, "one"]]);
    await unsubscribeSentinel();
  });

  test("a bus handler that throws does not stop delivery to the others, and publish still settles", async () => {
    const topic = fresh();
    const got: string[] = [];
    const offs = [
      await bus.subscribe(topic, (_t, p) => got.push(`before:${p}`)),
      await bus.subscribe(topic, () => {
        throw new Error("bad subscriber");
      }),
      await bus.subscribe(topic, (_t, p) => got.push(`after:${p}`)),
    ];
    try {
      await bus.publish(topic, "1");
      await eventually(() => got.length === 2);
      expect(got.sort()).toEqual(["after:1", "before:1"]);
    } finally {
      for (const off of offs) await off();
    }
  });

  test("a bus handler on a '+' wildcard filter receives matching topics only", async () => {
    const root = fresh();
    const got: string[] = [];
    const unsubscribe = await bus.subscribe(`${root}/+/temp`, (t) => got.push(t));
    const c = await client();
    await c.client.publishAsync(`${root}/a/temp`, "1", { qos: 1 });
    await c.client.publishAsync(`${root}/a/humidity`, "2", { qos: 1 });
    await c.client.publishAsync(`${root}/b/temp`, "3", { qos: 1 });
    await eventually(() => got.length >= 2);
    expect(got).toEqual([`${root}/a/temp`, `${root}/b/temp`]);
    await unsubscribe();
  });
});

describe("retained messages", () => {
  test("[MQTT-3.3.1-6] [MQTT-3.3.1-8] retained message is sent to a new subscriber with the retain flag", async () => {
    const topic = fresh();
    const publisher = await client();
    await publisher.client.publishAsync(topic, "22.5", { qos: 1, retain: true });

    const late = await client();
    const seen = packets(late);
    await late.subscribe(topic);
    const m = await late.next((m) => m.topic === topic);
    expect(m.payload.toString()).toBe("22.5");
    expect(seen[0]!.retain).toBe(true);

    await publisher.client.publishAsync(topic, "", { qos: 1, retain: true }); // clear
  });

  test("[MQTT-3.3.1-9] an established subscriber receives a retained publish with retain 0", async () => {
    const topic = fresh();
    const sub = await client();
    const seen = packets(sub);
    await sub.subscribe(topic);
    const publisher = await client();
    await publisher.client.publishAsync(topic, "live", { qos: 1, retain: true });
    await sub.next((m) => m.topic === topic);
    expect(seen[0]!.retain).toBe(false);
    await publisher.client.publishAsync(topic, "", { qos: 1, retain: true });
  });

  test("[MQTT-3.3.1-10] a zero-byte retained publish removes the retained message", async () => {
    const topic = fresh();
    const sentinel = fresh();
    const publisher = await client();
    await publisher.client.publishAsync(topic, "old", { qos: 1, retain: true });
    await publisher.client.publishAsync(topic, "", { qos: 1, retain: true });
    await publisher.client.publishAsync(sentinel, "s", { qos: 1, retain: true });

    // One SUBSCRIBE, topic first: the broker sends its retained messages filter by filter, in order.
    const late = await client();
    await late.client.subscribeAsync([topic, sentinel], { qos: 1 });
    await late.next((m) => m.topic === sentinel);
    expect(late.received.filter((m) => m.topic === topic)).toHaveLength(0);
    await publisher.client.publishAsync(sentinel, "", { qos: 1, retain: true });
  });

  test("a retained bus publish reaches a later subscriber", async () => {
    const topic = fresh();
    await bus.publish(topic, "kept", { retain: true });
    const late = await client();
    const seen = packets(late);
    await late.subscribe(topic);
    expect((await late.next((m) => m.topic === topic)).payload.toString()).toBe("kept");
    expect(seen[0]!.retain).toBe(true);
    await bus.publish(topic, "", { retain: true });
  });
});

describe("ACL: reserved topics", () => {
  // [MQTT-3.3.5-2] the server acknowledges as usual and drops the message (as Mosquitto does).
  test.each(["events/x/y", "$platform/a", "$SYS/a"])("a client publishing to %s is acknowledged, stays connected, and nothing is delivered", async (reserved) => {
    const viaBus: string[] = [];
    const unsubscribe = await bus.subscribe(reserved, (t) => viaBus.push(t));
    const watcher = await client();
    await watcher.subscribe(reserved);
    await watcher.subscribe("#");
    const sentinel = fresh();
    await watcher.subscribe(sentinel);

    const offender = await client();
    const handed = reports.published(broker.aedes, (m) => m.payload.toString() === "forged", 2);
    await offender.client.publishAsync(reserved, "forged", { qos: 1 });
    await offender.client.publishAsync(reserved, "forged", { qos: 0 });
    expect(offender.client.connected).toBe(true);

    // Both handed to whoever they were for (to the watcher, were they not dropped); the offender's own
    // later message arrives. (The watcher's '#' also brings what other tests left retained.)
    await handed;
    await offender.client.publishAsync(sentinel, "ok", { qos: 1 });
    await watcher.next((m) => m.topic === sentinel);
    expect(watcher.received.filter((m) => m.topic === reserved || m.topic.startsWith("$denied") || m.payload.toString() === "forged")).toEqual([]);
    expect(viaBus).toEqual([]);
    await unsubscribe();
  });

  test("a retained publish to a reserved topic is not stored", async () => {
    const offender = await client();
    await offender.client.publishAsync("$platform/forged", "x", { qos: 1, retain: true });
    const late = await client();
    await expect(late.subscribe("$denied/#")).rejects.toThrow(/Subscribe error/);
    // One SUBSCRIBE, the forged topic first: the broker sends its retained messages filter by filter,
    // in order, so the sentinel's (stored before its PUBACK) comes after any for the forged topic.
    const sentinel = fresh();
    await offender.client.publishAsync(sentinel, "ok", { qos: 1, retain: true });
    await late.client.subscribeAsync(["$platform/forged", sentinel], { qos: 1 });
    await late.next((m) => m.topic === sentinel);
    expect(late.received.filter((m) => m.topic !== sentinel)).toEqual([]);
  });

  test("a client publishing to sensors/a is delivered and stays connected", async () => {
    const watcher = await client();
    await watcher.subscribe("sensors/a");
    const viaBus: string[] = [];
    const unsubscribe = await bus.subscribe("sensors/a", (_t, p) => viaBus.push(p.toString()));
    const publisher = await client();
    await publisher.client.publishAsync("sensors/a", "21", { qos: 1 });
    expect((await watcher.next((m) => m.topic === "sensors/a")).payload.toString()).toBe("21");
    await eventually(() => viaBus.length === 1);
    expect(viaBus).toEqual(["21"]);
    expect(publisher.client.connected).toBe(true);
    await unsubscribe();
  });

  test("a client may subscribe to reserved namespaces (read-only, not forbidden)", async () => {
    const c = await client();
    expect(await c.subscribe("$platform/#", 1)).toEqual([1]);
    expect(await c.subscribe("events/#", 1)).toEqual([1]);
  });
});

describe("isReservedTopic", () => {
  // The bare roots count too: `events/#` also matches "events" ([MQTT-4.7.1-2]).
  test.each([
    ["events", true],
    ["$platform", true],
    ["$SYS", true],
    ["events/orders/created", true],
    ["events/x", true],
    ["events/", true],
    ["$platform/breakers/orders", true],
    ["$platform/a", true],
    ["$SYS/broker/uptime", true],
    ["sensors/a", false],
    ["eventsx/a", false],
    ["myevents/a", false],
    ["$platformx/a", false],
    ["$sys/a", false],
    ["Events/a", false],
    ["", false],
    ["a/events/b", false],
  ] as const)("%p → %p", (topic, reserved) => {
    expect(isReservedTopic(topic)).toBe(reserved);
  });
});

describe("MQTT over WebSocket", () => {
  let server: Server<MqttSocketData>;
  let wsUrl: string;

  beforeAll(() => {
    server = Bun.serve<MqttSocketData>({
      port: 0,
      hostname: "127.0.0.1",
      fetch(req, srv) {
        return upgradeMqtt(req, srv) ? undefined : new Response("no", { status: 400 });
      },
      websocket: mqttWebSocketHandler((s) => broker.handle(s)),
    });
    wsUrl = `ws://127.0.0.1:${server.port}/mqtt`;
  });

  afterAll(async () => {
    await server.stop(true);
  });

  function rawSocket(protocols?: string[]): Promise<WebSocket> {
    const ws = protocols ? new WebSocket(wsUrl, protocols) : new WebSocket(wsUrl);
    ws.binaryType = "arraybuffer";
    return new Promise((resolve, reject) => {
      ws.onopen = () => resolve(ws);
      ws.onerror = () => reject(new Error("websocket failed to open"));
    });
  }

  function closeEvent(ws: WebSocket, timeoutMs = 3_000): Promise<CloseEvent> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("websocket was not closed by the server")), timeoutMs);
      ws.onclose = (e) => {
        clearTimeout(timer);
        resolve(e);
      };
    });
  }

  test("an MQTT.js client over ws:// can subscribe and receive a bus publish", async () => {
    const topic = fresh();
    const c = await client(wsUrl);
    const seen = packets(c);
    expect(await c.subscribe(topic, 1)).toEqual([1]);
    await bus.publish(topic, "over-ws");
    const m = await c.next((m) => m.topic === topic);
    expect(m.payload.toString()).toBe("over-ws");
    expect(seen[0]!.qos).toBe(1);
  });

  test("a WebSocket client and a TCP client see each other's publishes", async () => {
    const topic = fresh();
    const wsClient = await client(wsUrl);
    const tcpClient = await client();
    await wsClient.subscribe(topic);
    await tcpClient.subscribe(topic);
    await tcpClient.client.publishAsync(topic, "from-tcp", { qos: 1 });
    await wsClient.client.publishAsync(topic, "from-ws", { qos: 1 });
    await eventually(() => wsClient.received.length === 2 && tcpClient.received.length === 2);
    expect(wsClient.received.map((m) => m.payload.toString()).sort()).toEqual(["from-tcp", "from-ws"]);
    expect(tcpClient.received.map((m) => m.payload.toString()).sort()).toEqual(["from-tcp", "from-ws"]);
  });

  test("a WebSocket client's publish to a reserved topic is acknowledged and dropped", async () => {
    const c = await client(wsUrl);
    await c.subscribe("$platform/#");
    const handed = reports.published(broker.aedes, (m) => m.payload.toString() === "forged");
    await c.client.publishAsync("$platform/x", "forged", { qos: 1 });
    await handed; // to whoever it was for: to c, were it not dropped
    await c.subscribe("ws/after");
    await c.client.publishAsync("ws/after", "ok", { qos: 1 });
    await c.next((m) => m.topic === "ws/after");
    expect(c.client.connected).toBe(true);
    // (other tests leave retained messages under $platform/: only this one's payload counts)
    expect(c.received.filter((m) => m.payload.toString() === "forged")).toEqual([]);
  });

  test("[MQTT-6.0.0-3] the server echoes the mqtt subprotocol", async () => {
    const ws = await rawSocket(["mqtt"]);
    try {
      expect(ws.protocol).toBe("mqtt");
    } finally {
      ws.close();
    }
  });

  test("[MQTT-6.0.0-3] mqtt is selected among several offered subprotocols", async () => {
    const ws = await rawSocket(["mqttv3.1", "mqtt"]);
    try {
      expect(ws.protocol).toBe("mqtt");
    } finally {
      ws.close();
    }
  });

  test("no subprotocol is echoed when none is offered", async () => {
    const ws = await rawSocket();
    try {
      expect(ws.protocol).toBe("");
    } finally {
      ws.close();
    }
  });

  test("[MQTT-6.0.0-1] a text frame makes the server close the connection", async () => {
    const ws = await rawSocket(["mqtt"]);
    const closing = closeEvent(ws);
    ws.send("\u0010 not an MQTT binary frame");
    const e = await closing;
    expect(e.code).toBe(1003);
    expect(ws.readyState).toBe(WebSocket.CLOSED);
  });

  test("a plain HTTP request to the upgrade handler gets the fallback response", async () => {
    const res = await fetch(`http://127.0.0.1:${server.port}/mqtt`);
    expect(res.status).toBe(400);
    expect(await res.text()).toBe("no");
  });
});

describe("bus.clearRetained", () => {
  test("removes the retained messages under a filter and leaves the others", async () => {
    await bus.publish("$platform/breakers/a", "open", { retain: true });
    await bus.publish("$platform/breakers/b", "open", { retain: true });
    await bus.publish("$platform/other", "kept", { retain: true });
    expect(await bus.clearRetained("$platform/breakers/#")).toBe(2);
    // One SUBSCRIBE, the cleared filter first: the broker sends its retained messages filter by filter, in order.
    const late = await client();
    await late.client.subscribeAsync(["$platform/breakers/#", "$platform/other"], { qos: 1 });
    expect((await late.next((m) => m.topic === "$platform/other")).payload.toString()).toBe("kept");
    expect(late.received.map((m) => m.topic)).toEqual(["$platform/other"]);
    expect(await bus.clearRetained("$platform/breakers/#")).toBe(0);
  });
});
