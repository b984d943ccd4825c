/**
 * startGateway on a real socket (port 0): it serves the app, hands MQTT-over-WebSocket upgrades to the
 * broker, says why it cannot listen, logs the broker store's transitions, and stops within its grace.
 */
import { describe, expect, test } from "bun:test";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { loadConfig } from "../../../config/load";
import type { UserConfig } from "../../../config";
import { BROKER_DB_FILE } from "../../../runtime/broker/persistence";
import { mqttWebSocketHandler } from "../../../runtime/broker/ws";
import { startGateway, type GatewayApp } from "../../../runtime/gateway/gateway";
import { createLogger } from "../../../runtime/log";
import { storeHealth } from "../../../runtime/storage/faults";
import { eventually } from "../../helpers/eventually";
import { rawRequest } from "../../helpers/raw-http";
import { tempDir } from "../../helpers/tmp";
import { deferred } from "./fake-upstream";

async function setup(overrides: UserConfig = {}, app: GatewayApp = { fetch: (r) => Response.json({ url: r.url }) }) {
  const dir = tempDir("plinth-gateway-listen");
  const { config } = await loadConfig({ cwd: dir.path, overrides: { ...overrides, gateway: { host: "127.0.0.1", port: 0, ...overrides.gateway }, data: { dir: dir.path } } });
  const logs: Array<{ msg: string; [k: string]: unknown }> = [];
  const log = createLogger({ level: "info", format: "json", write: (line) => logs.push(JSON.parse(line)) });
  const streams: unknown[] = [];
  const websocket = mqttWebSocketHandler((stream) => streams.push(stream));
  let gateway: ReturnType<typeof startGateway>;
  try {
    gateway = startGateway(app, websocket, config, log);
  } catch (err) {
    dir[Symbol.dispose]();
    throw err;
  }
  return {
    gateway,
    config,
    logs,
    streams,
    log,
    async [Symbol.asyncDispose]() {
      await gateway.stop(0);
      dir[Symbol.dispose]();
    },
  };
}

describe("startGateway", () => {
  test("serves the app on its address, knows the client's address, and says where it listens", async () => {
    await using s = await setup();
    expect(s.gateway.port).toBeGreaterThan(0);
    expect(s.gateway.url).toBe(`http://127.0.0.1:${s.gateway.port}`);
    const res = await fetch(`${s.gateway.url}/x?y=1`);
    expect(await res.json()).toEqual({ url: `${s.gateway.url}/x?y=1` });
    const listening = s.logs.find((l) => l.msg === "gateway listening");
    expect(listening).toMatchObject({ url: s.gateway.url, mqttWebSocket: `ws://127.0.0.1:${s.gateway.port}/mqtt` });
  });

  test("the client's address of a request being served", async () => {
    let ip = "";
    const app: GatewayApp = { fetch: (r) => ((ip = holder.gateway.clientIp(r)), new Response("ok")) };
    const holder = await setup({}, app);
    try {
      await fetch(`${holder.gateway.url}/`);
      expect(ip).toBe("127.0.0.1");
      expect(holder.gateway.clientIp(new Request("http://x/"))).toBe("unknown");
    } finally {
      await holder[Symbol.asyncDispose]();
    }
  });

  test("MQTT over WebSocket at broker.websocketPath goes to the broker (offering the mqtt subprotocol); other paths and plain requests to the app", async () => {
    await using s = await setup();
    const ws = new WebSocket(`ws://127.0.0.1:${s.gateway.port}/mqtt`, "mqtt");
    await new Promise((resolve, reject) => ((ws.onopen = resolve), (ws.onerror = reject)));
    expect(ws.protocol).toBe("mqtt");
    await eventually(() => s.streams.length === 1);
    ws.close();
    const other = new WebSocket(`ws://127.0.0.1:${s.gateway.port}/elsewhere`);
    await new Promise((resolve) => ((other.onerror = resolve), (other.onclose = resolve)));
    expect(s.streams).toHaveLength(1);
    expect(await (await fetch(`${s.gateway.url}/mqtt`)).json()).toEqual({ url: `${s.gateway.url}/mqtt` });
  });

  test("an upgrade that is not a valid WebSocket handshake: 400 PLT_BAD_REQUEST", async () => {
    await using s = await setup();
    const res = await rawRequest(s.gateway.port, "GET /mqtt HTTP/1.1\r\nHost: a\r\nUpgrade: WebSocket\r\nConnection: upgrade\r\n\r\n");
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body)).toEqual({ error: { code: "PLT_BAD_REQUEST", message: "WebSocket upgrade failed" } });
  });

  test("broker.websocketPath empty: no WebSocket endpoint, and none announced", async () => {
    await using s = await setup({ broker: { websocketPath: "" } });
    const res = await rawRequest(s.gateway.port, "GET /mqtt HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
    expect(res.status).toBe(200);
    expect(s.logs.find((l) => l.msg === "gateway listening")!.mqttWebSocket).toBeUndefined();
  });

  test("a port already taken: PLT_LISTEN_FAILED naming the field, address and reason", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen({ host: "127.0.0.1", port: 0, exclusive: true }, resolve));
    const port = (taken.address() as AddressInfo).port;
    let caught: unknown;
    try {
      await (await setup({ gateway: { port } }))[Symbol.asyncDispose]();
    } catch (err) {
      caught = err;
    } finally {
      taken.close();
    }
    expect((caught as { code: string }).code).toBe("PLT_LISTEN_FAILED");
    expect((caught as Error).message).toBe(`gateway.port: cannot listen on 127.0.0.1:${port}: address already in use`);
  });

  test("the broker store's transitions are logged while it listens, not after it stopped", async () => {
    await using s = await setup();
    const store = storeHealth(join(s.config.data.dir, BROKER_DB_FILE));
    store.failed(Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" }));
    expect(s.logs.find((l) => l.msg === "storage failing")).toMatchObject({ service: "broker", reason: "disk full", code: "SQLITE_FULL", error: "database or disk is full" });
    store.committed();
    const recovered = await eventually(() => s.logs.find((l) => l.msg === "storage recovered"));
    expect(recovered).toMatchObject({ service: "broker", reason: "disk full" });
    await s.gateway.stop(0);
    store.failed(Object.assign(new Error("disk I/O error"), { code: "SQLITE_IOERR" }));
    expect(s.logs.filter((l) => l.msg === "storage failing")).toHaveLength(1);
  });

  test("the broker kept in memory: no store to watch, it starts and stops all the same", async () => {
    const s = await setup({ broker: { persistence: "memory" } });
    try {
      expect(await (await fetch(`${s.gateway.url}/x`)).json()).toEqual({ url: `${s.gateway.url}/x` });
    } finally {
      await s[Symbol.asyncDispose]();
    }
    expect(s.logs.map((l) => l.msg)).toEqual(["gateway listening"]);
  });

  test("a declared body up to 4 × gateway.maxBodyBytes (at least 16 MiB) reaches the app, which answers its own 413; a larger one Bun refuses", async () => {
    const MiB = 1024 * 1024;
    const app: GatewayApp = { fetch: (r) => Response.json({ length: r.headers.get("content-length") }, { status: 413 }) };
    const declare = (port: number, bytes: number) => rawRequest(port, `POST /api/s HTTP/1.1\r\nHost: a\r\nContent-Length: ${bytes}\r\n\r\n`);
    await using small = await setup({}, app);
    const within = await declare(small.gateway.port, 5 * MiB);
    expect([within.status, JSON.parse(within.body)]).toEqual([413, { length: String(5 * MiB) }]);
    expect(JSON.parse((await declare(small.gateway.port, 16 * MiB)).body)).toEqual({ length: String(16 * MiB) });
    expect(await declare(small.gateway.port, 16 * MiB + 1)).toMatchObject({ status: 413, body: "" });
    await using large = await setup({ gateway: { maxBodyBytes: 8 * MiB } }, app);
    expect(JSON.parse((await declare(large.gateway.port, 32 * MiB)).body)).toEqual({ length: String(32 * MiB) });
    expect(await declare(large.gateway.port, 32 * MiB + 1)).toMatchObject({ status: 413, body: "" });
  });

  test("stop waits up to its grace for a request in flight, then closes", async () => {
    const entered = deferred<void>();
    const release = deferred<void>();
    const app: GatewayApp = {
      fetch: async () => {
        entered.resolve();
        await release.promise;
        return new Response("done");
      },
    };
    const s = await setup({}, app);
    try {
      const answer = fetch(`${s.gateway.url}/slow`).then((r) => r.text());
      await entered.promise;
      const stopping = s.gateway.stop(10_000);
      let stopped = false;
      void stopping.then(() => (stopped = true));
      release.resolve();
      expect(await answer).toBe("done");
      await stopping;
      expect(stopped).toBe(true);
      const next = deferred<void>();
      const held = await setup({}, { fetch: async () => (next.resolve(), await new Promise<Response>(() => {})) });
      const lost = fetch(`${held.gateway.url}/never`).then(() => "answered", () => "closed");
      await next.promise;
      const started = performance.now();
      await held.gateway.stop(50);
      expect(performance.now() - started).toBeGreaterThanOrEqual(45);
      expect(await lost).toBe("closed");
      await held[Symbol.asyncDispose]();
    } finally {
      await s[Symbol.asyncDispose]();
    }
  });
});
