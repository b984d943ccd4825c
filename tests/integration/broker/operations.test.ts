/**
 * Broker operations settings through the platform: broker.maxConnections (refused with CONNACK 3,
 * counted, WebSocket included) and the TLS listener (broker.tls: a self-signed certificate made
 * here with openssl, MQTT.js over mqtts://), and what a broken TLS setting does at start-up.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { loadConfig } from "../../../config/load";
import { boot, type Booted, ON_MAIN_THREAD, inside } from "../../helpers/boot";
import { connectMqtt, eventually, type TestClient } from "../../helpers/mqtt";
import { tempDir } from "../../helpers/tmp";

const certs = tempDir("plinth-tls");
const cert = certs.join("cert.pem");
const key = certs.join("key.pem");
beforeAll(() => {
  const made = Bun.spawnSync(
    ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost"],
    { stderr: "pipe" },
  );
  if (made.exitCode !== 0) throw new Error(`openssl: ${made.stderr.toString()}`);
});
afterAll(() => certs[Symbol.dispose]());

/** Connects, or resolves with the error MQTT.js reports. */
async function attempt(url: string): Promise<TestClient | Error> {
  return connectMqtt(url, { connectTimeout: 3_000 }).catch((err: Error) => err);
}

describe("broker.maxConnections", () => {
  let app: Booted;
  const open: TestClient[] = [];
  beforeAll(async () => {
    app = await boot({}, { broker: { maxConnections: 2, sysIntervalMs: 0 } }, ON_MAIN_THREAD);
  });
  afterAll(async () => {
    await Promise.all(open.map((c) => c.end()));
    await app.stop();
  });

  test("a connection beyond the limit gets CONNACK 3 (server unavailable) and is closed; it is counted; a freed place is taken again", async () => {
    for (let i = 0; i < 2; i++) open.push((await attempt(app.mqttUrl)) as TestClient);
    expect(open.every((c) => c.client.connected)).toBe(true);

    const refused = await attempt(app.mqttUrl);
    expect(refused).toBeInstanceOf(Error);
    expect((refused as Error & { code?: number }).code).toBe(3);
    expect(inside(app).stats.rejected).toBe(1);

    // over WebSocket too: the limit is on every MQTT connection
    const ws = await attempt(app.wsUrl);
    expect(ws).toBeInstanceOf(Error);
    expect(inside(app).stats.rejected).toBe(2);

    await open.pop()!.end();
    const again = await eventually(async () => {
      const c = await attempt(app.mqttUrl);
      return c instanceof Error ? undefined : c;
    });
    open.push(again);
    // the ones that got in are served as usual
    await again.subscribe("ops/limit", 1);
    await open[0]!.client.publishAsync("ops/limit", "hello", { qos: 1 });
    expect((await again.next((m) => m.topic === "ops/limit")).payload.toString()).toBe("hello");
  });
});

describe("broker.tls", () => {
  let app: Booted;
  const open: TestClient[] = [];
  beforeAll(async () => {
    app = await boot({}, { broker: { sysIntervalMs: 0, tls: { port: 0, cert, key } } });
  });
  afterAll(async () => {
    await Promise.all(open.map((c) => c.end()));
    await app.stop();
  });

  test("MQTT over TLS on its own port, beside plain TCP: messages cross between them", async () => {
    const tlsPort = app.platform.broker!.tlsPort;
    expect(tlsPort).toBeGreaterThan(0);
    expect(tlsPort).not.toBe(app.platform.broker!.port);
    const secure = await connectMqtt(`mqtts://127.0.0.1:${tlsPort}`, { rejectUnauthorized: false });
    open.push(secure);
    const plain = await connectMqtt(app.mqttUrl);
    open.push(plain);
    await secure.subscribe("ops/tls", 1);
    await plain.subscribe("ops/tls", 1);
    await plain.client.publishAsync("ops/tls", "from tcp", { qos: 1 });
    await secure.client.publishAsync("ops/tls", "from tls", { qos: 1 });
    const payloads = (c: TestClient) => c.received.filter((m) => m.topic === "ops/tls").map((m) => m.payload.toString());
    await eventually(() => payloads(secure).length === 2 && payloads(plain).length === 2);
    expect(payloads(secure)).toEqual(["from tcp", "from tls"]);
  });

  test("a plain MQTT client on the TLS port does not get in", async () => {
    const result = await attempt(`mqtt://127.0.0.1:${app.platform.broker!.tlsPort}`);
    expect(result).toBeInstanceOf(Error);
  });
});

describe("a broken broker.tls stops start-up, naming the field", () => {
  const start = (tls: { port?: number; cert: string; key: string }) =>
    boot({}, { broker: { sysIntervalMs: 0, tls: { port: 0, ...tls } } }).then(
      async (app) => {
        await app.stop();
        throw new Error("started");
      },
      (err: Error & { code?: string }) => err,
    );

  test("a certificate file that does not exist: PLT_CONFIG_INVALID broker.tls.cert", async () => {
    const err = await start({ cert: certs.join("missing.pem"), key });
    expect(err.code).toBe("PLT_CONFIG_INVALID");
    expect(err.message).toContain("broker.tls.cert");
    expect(err.message).toContain("missing.pem");
  });

  test("a key file that is not a PEM key: PLT_CONFIG_INVALID broker.tls.key", async () => {
    const bad = certs.join("bad-key.pem");
    writeFileSync(bad, "not a key\n");
    const err = await start({ cert, key: bad });
    expect(err.code).toBe("PLT_CONFIG_INVALID");
    expect(err.message).toContain("broker.tls.key");
  });

  test("a certificate file that holds a key: PLT_CONFIG_INVALID broker.tls.cert", async () => {
    const err = await start({ cert: key, key });
    expect(err.code).toBe("PLT_CONFIG_INVALID");
    expect(err.message).toContain("broker.tls.cert");
  });

  test("a TLS port in use: PLT_LISTEN_FAILED broker.tls.port", async () => {
    const taken = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const err = await start({ port: taken.port, cert, key });
      expect(err.code).toBe("PLT_LISTEN_FAILED");
      expect(err.message).toContain(`broker.tls.port: cannot listen on 127.0.0.1:${taken.port}: address already in use`);
    } finally {
      taken.stop(true);
    }
  });

  test("relative cert and key paths in the config file are relative to the file", async () => {
    writeFileSync(certs.join("platform.config.ts"), `export default { broker: { tls: { cert: "cert.pem", key: "./key.pem" } } };\n`);
    const { config } = await loadConfig({ cwd: certs.path });
    expect(config.broker.tls).toEqual({ port: 8883, cert, key });
  });
});
