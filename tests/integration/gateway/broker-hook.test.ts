/**
 * The broker hook (`auth.mqtt.brokerHook`): an outside broker checks this platform's API keys and
 * MQTT ACL over HTTP, as EMQX's HTTP authentication/authorization and mosquitto-go-auth's HTTP backend
 * do. Off unless configured; only a key with role "broker" may ask; any body gets a verdict or a 400.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { boot, type Booted } from "../../helpers/boot";
import { createKey } from "../../helpers/keys";
import { checkProperty, fc } from "../../helpers/property";

let p: Booted;
let broker: string;
let sensor: string;
let node: string;

beforeAll(async () => {
  p = await boot({}, { auth: { mqtt: { brokerHook: true, anonymous: true, acl: { sensor: { publish: ["sensors/%u/#"], subscribe: ["commands/%u/#"] }, anonymous: { publish: [], subscribe: ["public/#"] } } } } });
  broker = createKey(p.dataDir, ["broker"], "emqx");
  sensor = createKey(p.dataDir, ["sensor"], "t1");
  node = createKey(p.dataDir, ["cluster-node"], "node-a");
});
afterAll(async () => {
  await p?.stop();
});

const ask = (check: string, body: unknown, key: string | null = broker, query = "") =>
  fetch(`${p.url}/broker/${check}${query}`, { method: "POST", headers: { "content-type": "application/json", ...(key ? { "x-api-key": key } : {}) }, body: JSON.stringify(body) });
const verdict = async (check: string, body: unknown, query = "") => {
  const res = await ask(check, body, broker, query);
  return { status: res.status, body: await res.json() };
};

describe("who may ask", () => {
  test("off unless configured: 404", async () => {
    await using plain = await boot({});
    const res = await fetch(`${plain.url}/broker/authenticate`, { method: "POST", body: "{}", headers: { "content-type": "application/json" } });
    expect(res.status).toBe(404);
  });

  test("without a key 401; with a key without role broker 403", async () => {
    expect((await ask("authenticate", { clientid: "x" }, null)).status).toBe(401);
    const res = await ask("authenticate", { clientid: "x" }, sensor);
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("PLT_FORBIDDEN");
  });
});

describe("authenticate", () => {
  test("an API key is allowed, a wrong one denied, no password is anonymous (allowed here); a cluster node is a superuser", async () => {
    expect(await verdict("authenticate", { clientid: "dev1", username: "t1", password: sensor })).toEqual({ status: 200, body: { result: "allow", is_superuser: false } });
    expect(await verdict("authenticate", { clientid: "dev2", password: "plk_wrong" })).toEqual({ status: 200, body: { result: "deny" } });
    expect(await verdict("authenticate", { clientid: "dev3", password: "not.a.jwt" })).toEqual({ status: 200, body: { result: "deny" } });
    expect(await verdict("authenticate", { clientid: "anon", password: "" })).toEqual({ status: 200, body: { result: "allow", is_superuser: false } });
    expect(await verdict("authenticate", { clientid: "node-a", password: node })).toEqual({ status: 200, body: { result: "allow", is_superuser: true } });
  });
});

describe("authorize", () => {
  test("the ACL of the identity the client authenticated with: its own topics, not another's, never the platform's namespaces", async () => {
    await verdict("authenticate", { clientid: "dev1", password: sensor });
    const allow = { status: 200, body: { result: "allow", is_superuser: false } };
    const deny = { status: 200, body: { result: "deny" } };
    expect(await verdict("authorize", { clientid: "dev1", topic: "sensors/t1/temp", action: "publish" })).toEqual(allow);
    expect(await verdict("authorize", { clientid: "dev1", topic: "sensors/t2/temp", action: "publish" })).toEqual(deny);
    expect(await verdict("authorize", { clientid: "dev1", topic: "commands/t1/reboot", action: "subscribe" })).toEqual(allow);
    expect(await verdict("authorize", { clientid: "dev1", topic: "commands/t1/reboot", action: "publish" })).toEqual(deny);
    expect(await verdict("authorize", { clientid: "dev1", topic: "events/orders/created", action: "publish" })).toEqual(deny);
    // mosquitto-go-auth's acc: 2 write, 1 read, 3 both.
    expect(await verdict("authorize", { clientid: "dev1", topic: "sensors/t1/x", acc: 2 })).toEqual(allow);
    expect(await verdict("authorize", { clientid: "dev1", topic: "sensors/t1/x", acc: 3 })).toEqual(deny);
    // A client that never authenticated here, and status mode.
    expect(await verdict("authorize", { clientid: "stranger", topic: "public/x", action: "subscribe" })).toEqual(deny);
    expect(await verdict("authorize", { clientid: "dev1", topic: "sensors/t2/x", action: "publish" }, "?mode=status")).toEqual({ status: 403, body: { result: "deny" } });
  });

  test("a cluster node may publish anywhere, the platform's namespaces included", async () => {
    await verdict("authenticate", { clientid: "node-a", password: node });
    expect(await verdict("authorize", { clientid: "node-a", topic: "events/orders/created", action: "publish" })).toEqual({ status: 200, body: { result: "allow", is_superuser: true } });
  });
});

describe("hostile bodies", () => {
  test("malformed JSON, missing or mistyped fields: 400 with the reason", async () => {
    const raw = await fetch(`${p.url}/broker/authenticate`, { method: "POST", headers: { "content-type": "application/json", "x-api-key": broker }, body: "{" });
    expect(raw.status).toBe(400);
    expect(await verdict("authenticate", {})).toMatchObject({ status: 400, body: { error: { code: "PLT_BAD_REQUEST", message: "clientid is required" } } });
    expect(await verdict("authorize", { clientid: "dev1", topic: {}, action: "publish" })).toMatchObject({ status: 400, body: { error: { message: "topic must be a string" } } });
    expect(await verdict("authorize", { clientid: "dev1", topic: "a", action: "read" })).toMatchObject({ status: 400 });
    expect(await verdict("check", { clientid: "dev1" })).toMatchObject({ status: 404 });
  });

  test("any JSON body: a verdict or a 400, never a 500, the platform up", async () => {
    const field = fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.jsonValue(), fc.constant(sensor), fc.constantFrom("publish", "subscribe"));
    const body = fc.oneof(fc.jsonValue(), fc.record({ clientid: field, username: field, password: field, topic: field, action: field, acc: field }, { requiredKeys: [] }));
    await checkProperty("broker hook bodies", { runs: 300, ms: 4_000 }, [fc.constantFrom("authenticate", "authorize"), body], async (check, b) => {
      const res = await ask(check, b);
      expect([200, 400]).toContain(res.status);
      const answer = (await res.json()) as { result?: string; error?: { code: string; message: string } };
      if (res.status === 200) expect(["allow", "deny"]).toContain(answer.result!);
      else expect(answer.error!.code).toMatch(/^PLT_BAD_/);
    });
    expect((await fetch(`${p.url}/health`)).status).toBe(200);
  }, 20_000);
});
