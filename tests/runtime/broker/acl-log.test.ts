/**
 * What the operator's log says about refused clients: every refused CONNECT, dropped PUBLISH and
 * denied SUBSCRIBE is a warning naming the client, the topic or filter, and why (the client itself
 * only gets a return code, or nothing at all for a dropped publish [MQTT-3.3.5-2]).
 */
import { expect, test } from "bun:test";
import type { Client } from "aedes";
import type { Authenticator } from "../../../runtime/auth/authenticator";
import { aclHooks, type MqttAccess } from "../../../runtime/broker/acl";
import { PlinthError } from "../../../runtime/errors";
import { createLogger } from "../../../runtime/log";
import type { Identity } from "../../../runtime/protocol";

/** Hooks whose log records (JSON, warnings and up) land in `records`, without their time. */
function logged(access: MqttAccess | null) {
  const records: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: "warn", format: "json", write: (line) => records.push(JSON.parse(line)) });
  const hooks = aclHooks(log, access);
  const take = () => records.splice(0).map(({ time: _time, ...rest }) => rest);
  return { hooks, take };
}

const auth = {
  verify(credential: string): Identity {
    if (credential !== "sensor-key") throw new PlinthError("PLT_UNAUTHENTICATED", "invalid API key");
    return { sub: "sensor-1", roles: ["device"], via: "key" };
  },
} as unknown as Authenticator;
const access: MqttAccess = {
  auth,
  config: { anonymous: false, acl: { device: { publish: ["devices/%u/#"], subscribe: ["commands/%u/#"] } } } as unknown as MqttAccess["config"],
};

const client = (id: string, will?: string) => ({ id, _will: will ? { topic: will } : null }) as unknown as Client;

function connect(hooks: ReturnType<typeof aclHooks>, c: Client, password?: string): Promise<void> {
  return new Promise((resolve) => hooks.authenticate!(c, "user", password === undefined ? (undefined as never) : Buffer.from(password), () => resolve()));
}

function publish(hooks: ReturnType<typeof aclHooks>, c: Client | null, topic: string) {
  hooks.authorizePublish!(c as Client, { cmd: "publish", topic, payload: Buffer.from("x"), qos: 0, retain: false } as never, () => {});
}

test("a refused CONNECT: the client and the reason", async () => {
  const { hooks, take } = logged(access);
  await connect(hooks, client("no-creds"));
  await connect(hooks, client("bad-key"), "wrong");
  await connect(hooks, client("bad-will", "devices/sensor-2/gone"), "sensor-key");
  await connect(hooks, client("fine"), "sensor-key");
  expect(take()).toEqual([
    { level: "warn", msg: "MQTT connect refused", client: "no-creds", reason: "credentials required" },
    { level: "warn", msg: "MQTT connect refused", client: "bad-key", reason: "invalid API key" },
    { level: "warn", msg: "MQTT connect refused", client: "bad-will", reason: "will topic devices/sensor-2/gone is not allowed by the ACL" },
  ]);
});

test("a dropped PUBLISH: the client, the topic, and whether the topic is reserved or outside the ACL", async () => {
  const { hooks, take } = logged(access);
  const sensor = client("sensor");
  await connect(hooks, sensor, "sensor-key");
  publish(hooks, sensor, "events/orders/created");
  publish(hooks, sensor, "devices/sensor-2/temp");
  publish(hooks, sensor, "devices/sensor-1/temp");
  expect(take()).toEqual([
    { level: "warn", msg: "publish dropped", client: "sensor", topic: "events/orders/created", reason: "reserved topic" },
    { level: "warn", msg: "publish dropped", client: "sensor", topic: "devices/sensor-2/temp", reason: "not allowed by the ACL" },
  ]);
});

test("a dropped will of a client gone before a restart (no client): logged as such", () => {
  const { hooks, take } = logged(null);
  publish(hooks, null, "$platform/x");
  const [record] = take();
  expect(record).toMatchObject({ msg: "publish dropped", topic: "$platform/x", reason: "reserved topic" });
  expect(record!.client).toContain("will");
});

test("a denied SUBSCRIBE: the client and the filter", async () => {
  const { hooks, take } = logged(access);
  const sensor = client("sensor");
  await connect(hooks, sensor, "sensor-key");
  for (const filter of ["commands/sensor-2/#", "commands/sensor-1/#"]) hooks.authorizeSubscribe!(sensor, { topic: filter, qos: 0 } as never, () => {});
  expect(take()).toEqual([{ level: "warn", msg: "subscribe denied", client: "sensor", filter: "commands/sensor-2/#" }]);
});
