/**
 * MQTT over WebSocket on a port of its own (`broker.websocketPort`), served by the broker's thread:
 * clients publish and subscribe over it like over the gateway's path, the gateway no longer upgrades
 * that path, anything else on the port is a bare 404, and a restarted broker thread binds it again.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { boot, type Booted } from "../../helpers/boot";
import { connectMqtt, type Received, type TestClient } from "../../helpers/mqtt";
import { uniqueId } from "../../helpers/raw-mqtt";

let app: Booted;
const clients: TestClient[] = [];
beforeAll(async () => {
  app = await boot({}, { broker: { websocketPort: 0 }, workers: { restartDelayMs: 50 } });
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.end()));
  await app?.stop();
});

async function client(url: string, options: Parameters<typeof connectMqtt>[1] = {}): Promise<TestClient> {
  const c = await connectMqtt(url, options);
  clients.push(c);
  return c;
}

test("the broker listens on a port of its own, apart from the gateway's", () => {
  const { websocketPort } = app.platform.broker!;
  expect(websocketPort).toBeGreaterThan(0);
  expect(websocketPort).not.toBe(app.platform.gateway.port);
  expect(app.wsUrl).toBe(`ws://127.0.0.1:${websocketPort}/mqtt`);
});

test("a WebSocket client gets what a TCP client publishes, and the other way round", async () => {
  const topic = `ws-port/${uniqueId()}`;
  const ws = await client(app.wsUrl);
  const tcp = await client(app.mqttUrl);
  await ws.subscribe(`${topic}/to-ws`, 1);
  await tcp.subscribe(`${topic}/to-tcp`, 1);
  await tcp.client.publishAsync(`${topic}/to-ws`, "a", { qos: 1 });
  await ws.client.publishAsync(`${topic}/to-tcp`, "b", { qos: 1 });
  expect((await ws.next((m) => m.topic === `${topic}/to-ws`)).payload.toString()).toBe("a");
  expect((await tcp.next((m) => m.topic === `${topic}/to-tcp`)).payload.toString()).toBe("b");
});

test("the gateway's /mqtt is an ordinary path now, and the broker's port answers nothing but its path", async () => {
  const upgrade = { headers: { upgrade: "websocket", connection: "upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13" } };
  const atGateway = await fetch(`${app.url}/mqtt`, upgrade);
  expect(atGateway.status).toBe(404);
  expect(((await atGateway.json()) as { error: { code: string } }).error.code).toBe("PLT_NOT_FOUND");
  const port = app.platform.broker!.websocketPort;
  for (const path of ["/", "/api/platform", "/mqtt/x"]) {
    const res = await fetch(`http://127.0.0.1:${port}${path}`);
    expect(res.status).toBe(404);
    expect(await res.text()).toBe("");
  }
  // The path without an upgrade is not a WebSocket either.
  expect((await fetch(`http://127.0.0.1:${port}/mqtt`)).status).toBe(404);
});

test("a restarted broker thread binds the same port again, and a client reconnects there", async () => {
  const broker = app.platform.broker!;
  const port = broker.websocketPort;
  const topic = `ws-port/${uniqueId()}`;
  const ws = await client(app.wsUrl, { reconnectPeriod: 50 });
  await ws.subscribe(topic, 0);
  const back = new Promise<void>((resolve) => broker.bus.onReconnect(resolve));
  broker.kill();
  await back;
  expect(broker.websocketPort).toBe(port);
  const tcp = await client(app.mqttUrl);
  // QoS 0 published until one arrives: the client resubscribes on its own once reconnected.
  const arrived = ws.next((m) => m.topic === topic, 20_000);
  let got: Received | undefined;
  while (!got) {
    await tcp.client.publishAsync(topic, "again", { qos: 0 });
    got = await Promise.race([arrived, Bun.sleep(50).then(() => undefined)]);
  }
  expect(got.payload.toString()).toBe("again");
}, 30_000);
