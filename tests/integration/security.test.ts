/**
 * Gateway and broker security against a real platform: route policies, tokens and
 * keys, identity along call chains, rate limits, the response cache, OpenAPI, CORS,
 * and MQTT authentication with per-role topic ACLs.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { SignJWT } from "jose";
import { boot, type Booted, ON_MAIN_THREAD, inside } from "../helpers/boot";
import { createKey, revokeKey } from "../helpers/keys";
import * as reports from "../helpers/broker-reports";
import { connectMqtt, eventually, roundTrip } from "../helpers/mqtt";

const SECRET = "a-test-secret-that-is-long-enough-for-hs256";
const secret = new TextEncoder().encode(SECRET);
const jwt = (claims: Record<string, unknown>, exp: string | number = "5m") =>
  new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setSubject(String(claims.sub ?? "alice")).setIssuedAt().setExpirationTime(exp).sign(secret);

let p: Booted;
let userKey: string;
let deviceKey: string;

beforeAll(async () => {
  p = await boot(
    { fixtures: ["guarded", "snoop"] },
    {
      auth: {
        defaultPolicy: "authenticated",
        jwt: { secret: SECRET },
        mqtt: {
          anonymous: false,
          acl: {
            admin: { publish: ["#"], subscribe: ["#"] },
            device: { publish: ["devices/%u/#"], subscribe: ["devices/%u/#", "events/guarded/#"] },
          },
        },
      },
      gateway: {
        cors: { origins: ["https://app.example"] },
        fallbacks: { "GET /api/guarded/flaky-cached": { status: 200, body: { fallback: true } } },
      },
    }, ON_MAIN_THREAD,
  );
  userKey = createKey(p.dataDir, ["user"], "bob");
  deviceKey = createKey(p.dataDir, ["device"], "sensor-1");
});
afterAll(() => p.stop());

const get = (path: string, headers: Record<string, string> = {}, method = "GET") => p.req(path, { headers, anonymous: true, method });
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const errorOf = async (res: Response) => ((await res.json()) as { error: { code: string; message: string } }).error;

describe("route policies", () => {
  test("public routes answer anyone; invalid credentials are ignored there", async () => {
    expect((await get("/api/guarded/open")).status).toBe(200);
    expect(await (await get("/api/guarded/open", bearer("garbage"))).json()).toEqual({ identity: null });
  });

  test("the default policy (authenticated) answers 401 with WWW-Authenticate without credentials", async () => {
    const res = await get("/api/guarded/whoami-via-call");
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe('Bearer realm="plinth"');
    expect((await errorOf(res)).code).toBe("PLT_UNAUTHENTICATED");
  });

  test("a JWT proves an identity; ctx.identity shows it", async () => {
    const res = await get("/api/guarded/me", bearer(await jwt({ sub: "alice", roles: ["user"] })));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ sub: "alice", roles: ["user"], via: "jwt" });
  });

  test("an API key proves an identity, as X-API-Key or as a bearer token", async () => {
    expect(await (await get("/api/guarded/me", { "x-api-key": userKey })).json()).toEqual({ sub: "bob", roles: ["user"], via: "key" });
    expect(await (await get("/api/guarded/me", bearer(userKey))).json()).toEqual({ sub: "bob", roles: ["user"], via: "key" });
  });

  test("ctx.call carries the caller's identity to the callee", async () => {
    const res = await get("/api/guarded/whoami-via-call", bearer(await jwt({ sub: "carol", roles: ["ops"] })));
    expect(await res.json()).toEqual({ sub: "carol", roles: ["ops"], caller: "guarded" });
  });

  test("a worker cannot lend a call an identity: the host takes it from the request that made the call", async () => {
    expect((await p.req("/api/guarded/forged-call", { method: "POST", anonymous: true })).status).toBe(200);
    const seen = await eventually(async () => {
      const rows = (await (await get("/api/guarded/seen")).json()) as unknown[];
      return rows.length > 0 ? rows : null;
    });
    expect(seen).toEqual([{ who: null }]);
  });

  test("a wrong role answers 403; the right one 200", async () => {
    const res = await get("/api/guarded/admin", { "x-api-key": userKey });
    expect(res.status).toBe(403);
    expect(await errorOf(res)).toEqual({ code: "PLT_FORBIDDEN", message: "requires one of the roles admin", data: { roles: ["admin"] } } as never);
    expect((await get("/api/guarded/admin", { "x-api-key": p.adminKey })).status).toBe(200);
  });

  test.each([
    ["expired token", async () => bearer(await jwt({ sub: "x" }, Math.floor(Date.now() / 1000) - 60)), "token expired"],
    ["token signed with another key", async () => bearer(await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode("another-secret-another-secret-another!"))), "signature"],
    ["alg: none", async () => bearer(`${b64({ alg: "none", typ: "JWT" })}.${b64({ sub: "root", roles: ["admin"] })}.`), "algorithm"],
    ["malformed token", async () => bearer("not.a.jwt"), "malformed"],
    ["unknown API key", async () => ({ "x-api-key": "plk_000000000000_nope" }), "invalid API key"],
    ["Basic scheme", async () => ({ authorization: "Basic YWxhZGRpbjpvcGVuc2VzYW1l" }), "Bearer"],
  ])("%s → 401 invalid_token", async (_name, headers, reason) => {
    const res = await get("/api/guarded/me", await headers());
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer realm="plinth", error="invalid_(token|request)"/);
    const error = await errorOf(res);
    expect(error.code).toBe("PLT_UNAUTHENTICATED");
    expect(error.message).toContain(reason);
  });

  test("a revoked key stops working at once, while the platform runs", async () => {
    const key = createKey(p.dataDir, ["user"], "temp");
    expect((await get("/api/guarded/me", { "x-api-key": key })).status).toBe(200);
    expect(revokeKey(p.dataDir, "temp")).toBe(1);
    expect((await get("/api/guarded/me", { "x-api-key": key })).status).toBe(401);
  });

  test("the platform's own routes need role admin", async () => {
    expect((await get("/api/platform/services", { "x-api-key": userKey })).status).toBe(403);
    expect((await get("/api/platform/services", { "x-api-key": p.adminKey })).status).toBe(200);
  });

  test.each([
    ["GET", "/services"],
    ["GET", "/breakers"],
    ["GET", "/events"],
    ["GET", "/deadletters"],
    ["POST", "/redrive"],
  ])("a plugin calling the node's reserved action behind %s %s is refused with 403, whoever its caller", async (method, path) => {
    for (const headers of [{}, { "x-api-key": p.adminKey }] as Array<Record<string, string>>) {
      const res = await get(`/api/snoop${path}`, headers, method);
      expect(res.status).toBe(403);
      expect((await errorOf(res)).code).toBe("PLT_FORBIDDEN");
    }
  });

  test("the built-in platform service still calls the node's reserved actions", async () => {
    const admin = { "x-api-key": p.adminKey };
    const services = (await (await get("/api/platform/services", admin)).json()) as { services: Array<{ name: string }> };
    expect(services.services.map((s) => s.name)).toContain("snoop");
    expect((await get("/api/platform/breakers", admin)).status).toBe(200);
    expect((await get("/api/platform/events?service=guarded", admin)).status).toBe(200);
    expect((await get("/api/platform/deadletters/guarded", admin)).status).toBe(200);
  });

  test("the auth service manages keys over HTTP for admins", async () => {
    const created = await p.req("/api/auth/keys", { json: { name: "svc-1", roles: ["user"] } });
    expect(created.status).toBe(201);
    const { key, id } = (await created.json()) as { key: string; id: string };
    expect(await (await get("/api/auth/me", { "x-api-key": key })).json()).toEqual({ sub: "svc-1", roles: ["user"], via: "key" });
    const listed = (await (await p.req("/api/auth/keys")).json()) as Array<Record<string, unknown>>;
    expect(listed.find((k) => k.id === id)).toMatchObject({ name: "svc-1", roles: ["user"], revokedAt: null });
    expect(JSON.stringify(listed)).not.toContain(key);
    expect((await p.req(`/api/auth/keys/${id}`, { method: "DELETE" })).status).toBe(200);
    expect((await get("/api/auth/me", { "x-api-key": key })).status).toBe(401);
    expect((await p.req("/api/auth/keys", { json: { name: "x", roles: ["user"] }, headers: { "x-api-key": userKey } })).status).toBe(403);
  });
});

function b64(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

describe("rate limits", () => {
  test("the N+1-th request in a window gets 429 with Retry-After and RateLimit headers", async () => {
    const headers = { "x-api-key": createKey(p.dataDir, ["user"], "limited-caller") };
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await get("/api/guarded/limited", headers));
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 429]);
    expect(answers.map((r) => r.headers.get("ratelimit-remaining"))).toEqual(["2", "1", "0", "0"]);
    expect(answers[0]!.headers.get("ratelimit-limit")).toBe("3");
    const limited = answers[3]!;
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(Number(limited.headers.get("retry-after"))).toBeLessThanOrEqual(20);
    expect(Number(limited.headers.get("ratelimit-reset"))).toBeGreaterThan(0);
    expect((await errorOf(limited)).code).toBe("PLT_RATE_LIMITED");
    // Errors of a limited route carry the headers too.
    const missing = await get("/api/guarded/limited-missing/7");
    expect(missing.status).toBe(404);
    expect(missing.headers.get("ratelimit-limit")).toBe("100");
    expect(missing.headers.get("ratelimit-remaining")).toBe("99");
    // Another caller has a bucket of its own.
    expect((await get("/api/guarded/limited", { "x-api-key": p.adminKey })).status).toBe(200);
  });
});

describe("response cache", () => {
  test("hit, 304 on If-None-Match, and cleared at once by the route's own event", async () => {
    const first = await get("/api/guarded/notes");
    expect(first.headers.get("x-cache")).toBe("MISS");
    const etag = first.headers.get("etag")!;
    expect(etag).toMatch(/^"[0-9a-z]+"$/);
    const body = await first.json();

    const second = await get("/api/guarded/notes");
    expect(second.headers.get("x-cache")).toBe("HIT");
    expect(await second.json()).toEqual(body); // same servedAt: the service was not asked

    const conditional = await get("/api/guarded/notes", { "if-none-match": etag });
    expect(conditional.status).toBe(304);
    expect(await conditional.text()).toBe("");

    expect((await p.req("/api/guarded/notes", { json: { text: "hello" }, anonymous: true })).status).toBe(201);
    const after = await get("/api/guarded/notes");
    expect(after.headers.get("x-cache")).toBe("MISS");
    // (another test here adds a note too: this one's is the last)
    expect(((await after.json()) as { notes: Array<{ text: string }> }).notes.at(-1)).toMatchObject({ text: "hello" });
    expect((await get("/api/guarded/notes", { "if-none-match": etag })).status).toBe(200);
  });

  test("a public cached route is one answer for everyone: its handler sees no caller, and no cookie is replayed", async () => {
    const alice = await get("/api/guarded/greeting", bearer(await jwt({ sub: "alice" })));
    expect(await alice.json()).toEqual({ hello: "anyone" });
    expect(alice.headers.get("set-cookie")).toBeNull();
    const bob = await get("/api/guarded/greeting", { "x-api-key": userKey });
    expect(bob.headers.get("x-cache")).toBe("HIT");
    expect(await bob.json()).toEqual({ hello: "anyone" });
    expect(bob.headers.get("set-cookie")).toBeNull();
  });

  test("a fallback answer is never cached: the next call reaches the service", async () => {
    const first = await get("/api/guarded/flaky-cached");
    expect(first.headers.get("x-plinth-fallback")).toBe("PLT_HANDLER_ERROR");
    expect(await first.json()).toEqual({ fallback: true });
    const second = await get("/api/guarded/flaky-cached");
    expect(second.headers.get("x-cache")).toBe("MISS");
    expect(await second.json()).toEqual({ real: true });
    expect((await get("/api/guarded/flaky-cached")).headers.get("x-cache")).toBe("HIT");
  });

  test("answers of non-public routes are cached per identity", async () => {
    const alice = await get("/api/guarded/mine", bearer(await jwt({ sub: "alice" })));
    const bob = await get("/api/guarded/mine", { "x-api-key": userKey });
    expect(await alice.json()).toEqual({ sub: "alice" });
    expect(await bob.json()).toEqual({ sub: "bob" });
    expect(alice.headers.get("cache-control")).toBe("private, max-age=60");
    const again = await get("/api/guarded/mine", { "x-api-key": userKey });
    expect(again.headers.get("x-cache")).toBe("HIT");
    expect(await again.json()).toEqual({ sub: "bob" });
    expect((await get("/api/guarded/mine")).status).toBe(401);
  });
});

describe("OpenAPI, docs and CORS", () => {
  test("/openapi.json describes every loaded plugin's routes with their schemas and security", async () => {
    const doc = (await (await get("/openapi.json")).json()) as { openapi: string; paths: Record<string, Record<string, any>> };
    expect(doc.openapi).toBe("3.1.0");
    const post = doc.paths["/api/guarded/notes"]!.post;
    expect(post.requestBody.content["application/json"].schema).toMatchObject({ type: "object", required: ["text"] });
    expect(post.security).toEqual([]);
    expect(doc.paths["/api/guarded/notes"]!.get.summary).toBe("All notes (cached)");
    expect(doc.paths["/api/guarded/items/{id}"]!.get.parameters).toEqual([{ name: "id", in: "path", required: true, schema: { type: "integer", minimum: 1 } }]);
    expect(doc.paths["/api/guarded/admin"]!.get).toMatchObject({ security: [{ bearer: [] }, { apiKey: [] }], "x-roles": ["admin"] });
    expect(Object.keys(doc.paths)).toContain("/api/platform/services");
  });

  test("/docs serves the API reference page for /openapi.json", async () => {
    const res = await get("/docs");
    expect(res.headers.get("content-type")).toContain("text/html");
    expect(await res.text()).toContain("/openapi.json");
  });

  test("CORS: a configured origin gets its preflight answered; another gets no grant", async () => {
    const preflight = await fetch(`${p.url}/api/guarded/notes`, {
      method: "OPTIONS",
      headers: { origin: "https://app.example", "access-control-request-method": "POST", "access-control-request-headers": "content-type" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe("https://app.example");
    const other = await get("/api/guarded/open", { origin: "https://evil.example" });
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
  });
});

describe("MQTT authentication and ACLs", () => {
  test("bad credentials and missing credentials are refused at CONNECT", async () => {
    await expect(connectMqtt(p.mqttUrl, { username: "x", password: "plk_nope_nope" })).rejects.toThrow(/Bad username or password/i);
    await expect(connectMqtt(p.mqttUrl, {})).rejects.toThrow(/Not authorized/i);
    await expect(connectMqtt(p.mqttUrl, { username: "x", password: await jwt({ sub: "x" }, Math.floor(Date.now() / 1000) - 60) })).rejects.toThrow(/Bad username or password/i);
  });

  test("an API key or a JWT as password connects; the ACL decides subscriptions (failure code outside it)", async () => {
    await using device = await connectMqtt(p.mqttUrl, { username: "sensor-1", password: deviceKey });
    expect(await device.subscribe("devices/sensor-1/#", 1)).toEqual([1]);
    await expect(device.subscribe("devices/sensor-2/#", 1)).rejects.toThrow(/Subscribe error/);
    await expect(device.subscribe("#", 1)).rejects.toThrow(/Subscribe error/);
    expect(device.client.connected).toBe(true);
    await using admin = await connectMqtt(p.mqttUrl, { username: "ops", password: await jwt({ sub: "ops", roles: ["admin"] }) });
    expect(await admin.subscribe("devices/#", 1)).toEqual([1]);
  });

  test("publishes outside the ACL or into a service's namespace are dropped, not delivered", async () => {
    await using admin = await connectMqtt(p.mqttUrl, { username: "ops", password: p.adminKey });
    await admin.subscribe("devices/#", 1);
    await admin.subscribe("events/#", 1);
    await using device = await connectMqtt(p.mqttUrl, { username: "sensor-1", password: deviceKey });
    // Each handed to every subscriber it was for (the dropped ones to none) before the checks.
    const aedes = inside(p).aedes;
    const handed = Promise.all(["spoofed", "forged", "21"].map((payload) => reports.published(aedes, (m) => m.payload.toString() === payload)));
    await device.client.publishAsync("devices/sensor-2/temp", "spoofed", { qos: 1 });
    await device.client.publishAsync("events/guarded/note.added", "forged", { qos: 1 });
    await device.client.publishAsync("devices/sensor-1/temp", "21", { qos: 1 });
    await handed;
    await roundTrip(admin.client);
    const got = await admin.next((m) => m.topic === "devices/sensor-1/temp");
    expect(got.payload.toString()).toBe("21");
    // (what other tests left retained under devices/ comes too: only this test's payloads count)
    expect(admin.received.filter((m) => ["spoofed", "forged", "21"].includes(m.payload.toString())).map((m) => m.topic)).toEqual(["devices/sensor-1/temp"]);
    expect(device.client.connected).toBe(true);
  });

  test("a will is checked at CONNECT: outside the ACL or in a platform namespace, the connection is refused", async () => {
    const will = (topic: string) => ({ username: "sensor-1", password: deviceKey, will: { topic, payload: Buffer.from("gone"), qos: 1 as const, retain: true } });
    await expect(connectMqtt(p.mqttUrl, will("devices/sensor-2/status"))).rejects.toThrow(/Not authorized/i);
    await expect(connectMqtt(p.mqttUrl, will("$platform/breakers/guarded"))).rejects.toThrow(/Not authorized/i);
    await using ok = await connectMqtt(p.mqttUrl, will("devices/sensor-1/status"));
    expect(ok.client.connected).toBe(true);
  });

  test("a persistent session taken over by another identity does not hand it the queued messages", async () => {
    const intruderKey = createKey(p.dataDir, ["device"], "sensor-2");
    const session = { clientId: "shared-id", clean: false } as const;
    const owner = await connectMqtt(p.mqttUrl, { ...session, username: "sensor-1", password: deviceKey });
    await owner.subscribe("devices/sensor-1/#", 1);
    await owner.end();
    await using admin = await connectMqtt(p.mqttUrl, { username: "ops", password: p.adminKey });
    await admin.client.publishAsync("devices/sensor-1/secret", "for sensor-1 only", { qos: 1 });
    await using intruder = await connectMqtt(p.mqttUrl, { ...session, username: "sensor-2", password: intruderKey });
    // Its own traffic still flows, so the queued message would have arrived by now.
    await intruder.subscribe("devices/sensor-2/#", 1);
    await admin.client.publishAsync("devices/sensor-2/ping", "x", { qos: 1 });
    await intruder.next((m) => m.topic === "devices/sensor-2/ping");
    expect(intruder.received.map((m) => m.topic)).toEqual(["devices/sensor-2/ping"]);
  });

  test("a device receives the events its role may read", async () => {
    await using device = await connectMqtt(p.mqttUrl, { username: "sensor-1", password: deviceKey });
    await device.subscribe("events/guarded/#", 1);
    await p.req("/api/guarded/notes", { json: { text: "for devices" }, anonymous: true });
    const event = await device.next((m) => m.topic === "events/guarded/note.added");
    expect(event.json().data).toMatchObject({ text: "for devices" });
  });
});
