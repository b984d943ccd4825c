/**
 * Hostile input against the compiled binary on its secure defaults: each row an
 * attack or a mistake with the status and error code it must get, and the platform
 * still serving afterwards. Keys are made with the `plinth keys` CLI.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { connect } from "node:net";
import { SignJWT } from "jose";
import { runBinary, startBinary, type Running } from "../helpers/binary";
import { connectMqtt } from "../helpers/mqtt";
import { writePlugins } from "../helpers/plugins";
import { rawConnect } from "../helpers/raw-mqtt";
import { tempDir } from "../helpers/tmp";

const SECRET = "e2e-secret-e2e-secret-e2e-secret-e2e";
const sign = (claims: Record<string, unknown>, key = SECRET) =>
  new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setSubject("e2e").sign(new TextEncoder().encode(key));
const b64 = (v: object) => Buffer.from(JSON.stringify(v)).toString("base64url");

const dir = tempDir("plinth-e2e-security");
let app: Running;
let userKey: string;
let revokedKey: string;
let deviceKey: string;

async function createKey(role: string, name: string): Promise<string> {
  const r = await runBinary(dir.path, ["keys", "create", "--role", role, "--name", name, "--json"]);
  expect(r.code).toBe(0);
  return (JSON.parse(r.stdout) as { key: string }).key;
}

beforeAll(async () => {
  writePlugins(dir.join("plugins"), { fixtures: ["guarded"] });
  writeFileSync(
    dir.join("platform.config.ts"),
    `export default {
  gateway: { requestTimeoutMs: 1500 },
  auth: {
    jwt: { secret: "${SECRET}" },
    mqtt: { acl: { device: { publish: ["devices/%u/#"], subscribe: ["devices/%u/#"] }, admin: { publish: ["#"], subscribe: ["#"] } } },
  },
};
`,
  );
  userKey = await createKey("user", "user-1");
  revokedKey = await createKey("user", "leaver");
  deviceKey = await createKey("device", "sensor-9");
  app = await startBinary(dir.path, ["--no-watch"]);
  const revoked = await runBinary(dir.path, ["keys", "revoke", "leaver"]);
  expect(revoked.stdout).toContain('revoked 1 key "leaver"');
});
afterAll(async () => {
  await app?.stop("SIGKILL");
  dir[Symbol.dispose]();
});

type Row = [name: string, request: () => Promise<Response>, status: number, code: string];
const at = (path: string, init: RequestInit = {}) => fetch(`${app.url}${path}`, init);
const auth = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });
const post = (path: string, body: string | Uint8Array, headers: Record<string, string> = {}) =>
  at(path, { method: "POST", body, headers: { "content-type": "application/json", ...headers } });

describe("hostile HTTP input (compiled binary, secure defaults)", () => {
  const rows: Row[] = [
    ["no token", () => at("/api/guarded/me"), 401, "PLT_UNAUTHENTICATED"],
    ["expired token", async () => at("/api/guarded/me", auth(await sign({ exp: Math.floor(Date.now() / 1000) - 120 }))), 401, "PLT_UNAUTHENTICATED"],
    ["token signed with another key", async () => at("/api/guarded/me", auth(await sign({}, "another-key-another-key-another-key!"))), 401, "PLT_UNAUTHENTICATED"],
    ["alg: none", () => at("/api/guarded/admin", auth(`${b64({ alg: "none" })}.${b64({ sub: "root", roles: ["admin"] })}.`)), 401, "PLT_UNAUTHENTICATED"],
    ["revoked key", () => at("/api/guarded/me", { headers: { "x-api-key": revokedKey } }), 401, "PLT_UNAUTHENTICATED"],
    ["wrong role", () => at("/api/guarded/admin", { headers: { "x-api-key": userKey } }), 403, "PLT_FORBIDDEN"],
    ["admin routes of the platform without admin", () => at("/api/platform/services", { headers: { "x-api-key": userKey } }), 403, "PLT_FORBIDDEN"],
    ["malformed JSON", () => post("/api/guarded/notes", '{"text": "unterminated'), 400, "PLT_BAD_JSON"],
    ["wrong types", () => post("/api/guarded/notes", JSON.stringify({ text: 42 })), 400, "PLT_VALIDATION"],
    ["unknown fields", () => post("/api/guarded/notes", JSON.stringify({ text: "a", admin: true })), 400, "PLT_VALIDATION"],
    ["a 10 MB body", () => post("/api/guarded/notes", new Uint8Array(10 * 1024 * 1024).fill(32)), 413, "PLT_BODY_TOO_LARGE"],
    ["path traversal in a route param", () => at("/api/guarded/items/..%2F..%2Fplatform%2Fservices"), 400, "PLT_VALIDATION"],
    // The URL parser resolves encoded dot segments first, so this is simply a request for
    // /api/platform/services, and that route's own policy (admin) answers.
    ["dot segments encoded", () => at("/api/guarded/items/%2e%2e/%2e%2e/platform/services"), 401, "PLT_UNAUTHENTICATED"],
    ["malformed percent-encoding", () => at("/api/guarded/items/%E0%A4%A"), 400, "PLT_BAD_REQUEST"],
    ["unknown service", () => at("/api/nosuch/thing"), 404, "PLT_SERVICE_NOT_FOUND"],
    ["unknown route", () => at("/api/guarded/nope"), 404, "PLT_NOT_FOUND"],
    ["unknown path outside /api", () => at("/etc/passwd"), 404, "PLT_NOT_FOUND"],
    ["header injection through a handler's header", () => at("/api/guarded/echo-header?v=a%0d%0aSet-Cookie:%20session=stolen"), 500, "PLT_HANDLER_ERROR"],
    ["unsupported content type", () => post("/api/guarded/notes", "<xml/>", { "content-type": "application/xml" }), 415, "PLT_UNSUPPORTED_MEDIA_TYPE"],
  ];

  test.each(rows)("%s → %d %s", async (_name, request, status, code) => {
    const res = await request();
    expect(res.status).toBe(status);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe(code);
    expect(body.error.message.length).toBeGreaterThan(0);
    expect(res.headers.get("set-cookie")).toBeNull();
    if (status === 401) expect(res.headers.get("www-authenticate")).toStartWith('Bearer realm="plinth"');
  });

  test("a slow client (body never completes) gets 408 PLT_REQUEST_TIMEOUT, and the socket is answered", async () => {
    const { port } = new URL(app.url);
    const started = Date.now();
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), "127.0.0.1", () => {
        socket.write(`POST /api/guarded/notes HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"te`);
      });
      let text = "";
      socket.on("data", (d) => {
        text += d.toString();
        if (text.includes("\r\n\r\n") && text.includes("}}")) (socket.destroy(), resolve(text));
      });
      socket.on("error", reject);
      setTimeout(() => (socket.destroy(), reject(new Error(`no answer; got ${JSON.stringify(text)}`))), 8_000);
    });
    expect(answer).toStartWith("HTTP/1.1 408");
    expect(answer).toContain('"code":"PLT_REQUEST_TIMEOUT"');
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_400);
  });

  test("after all of it the platform still serves, valid credentials work", async () => {
    expect((await at("/health")).status).toBe(200);
    expect(await (await at("/api/guarded/me", { headers: { "x-api-key": userKey } })).json()).toEqual({ sub: "user-1", roles: ["user"], via: "key" });
    expect((await at("/api/guarded/admin", { headers: { "x-api-key": app.adminKey } })).status).toBe(200);
    expect((await post("/api/guarded/notes", JSON.stringify({ text: "still here" }))).status).toBe(201);
  });
});

describe("hostile MQTT input (compiled binary)", () => {
  test("bad credentials are refused; no credentials are refused (anonymous is off by default)", async () => {
    await expect(connectMqtt(app.mqttUrl, { username: "x", password: "plk_bad_bad" })).rejects.toThrow(/Bad username or password/i);
    await expect(connectMqtt(app.mqttUrl, { username: "x", password: await sign({}, "wrong-wrong-wrong-wrong-wrong-wrong") })).rejects.toThrow(/Bad username or password/i);
    await expect(connectMqtt(app.mqttUrl)).rejects.toThrow(/Not authorized/i);
  });

  test("subscribe outside the ACL gets the failure code; publish into a service's namespace is not delivered", async () => {
    await using watcher = await connectMqtt(app.mqttUrl, { username: "ops", password: app.adminKey });
    await watcher.subscribe("events/#");
    await watcher.subscribe("devices/#");
    await using device = await connectMqtt(app.mqttUrl, { username: "sensor-9", password: deviceKey });
    await expect(device.subscribe("devices/other/#")).rejects.toThrow(/Subscribe error/);
    await device.client.publishAsync("events/guarded/note.added", JSON.stringify({ forged: true }), { qos: 1 });
    await device.client.publishAsync("devices/sensor-9/t", "20", { qos: 1 });
    await watcher.next((m) => m.topic === "devices/sensor-9/t");
    expect(watcher.received.map((m) => m.topic)).toEqual(["devices/sensor-9/t"]);
    expect(app.log()).toContain("publish dropped");
  });

  test("a malformed packet disconnects its client; the broker keeps serving others", async () => {
    await using good = await connectMqtt(app.mqttUrl, { username: "ops", password: app.adminKey });
    await good.subscribe("devices/#");
    await using raw = await rawConnect(app.mqttUrl);
    raw.sendBytes([0x10, 0xff, 0xff, 0xff, 0xff, 0x01]); // CONNECT with a remaining length over 4 bytes
    await raw.waitClosed(3_000);
    await good.client.publishAsync("devices/sensor-9/after", "ok", { qos: 1 });
    expect((await good.next((m) => m.topic === "devices/sensor-9/after")).payload.toString()).toBe("ok");
  });
});
