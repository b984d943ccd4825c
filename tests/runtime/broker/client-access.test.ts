/**
 * The broker's access hooks (aclHooks), called as aedes calls them: who may connect (and with
 * which will), and what a client's publishes, subscriptions and forwarded messages are allowed.
 * A denied PUBLISH is acknowledged and dropped [MQTT-3.3.5-2]; a denied SUBSCRIBE is refused [MQTT-3.9.3-2].
 */
import { describe, expect, test } from "bun:test";
import type { Client } from "aedes";
import type { Authenticator } from "../../../runtime/auth/authenticator";
import { aclHooks, type MqttAccess } from "../../../runtime/broker/acl";
import { PlinthError } from "../../../runtime/errors";
import { createLogger } from "../../../runtime/log";
import type { Identity } from "../../../runtime/protocol";

const log = createLogger({ level: "silent" });

const IDENTITIES: Record<string, Identity> = {
  "sensor-key": { sub: "sensor-1", roles: ["device"], via: "key" } as Identity,
};

/** An authenticator that knows one key, fails others at once, and fails "later" asynchronously. */
const auth = {
  verify(credential: string): Identity | Promise<Identity> {
    if (credential === "later") return Promise.reject(new PlinthError("PLT_UNAUTHENTICATED", "expired token"));
    const identity = IDENTITIES[credential];
    if (!identity) throw new PlinthError("PLT_UNAUTHENTICATED", "invalid API key");
    return identity;
  },
} as unknown as Authenticator;

const ACL = {
  device: { publish: ["devices/%u/#"], subscribe: ["commands/%u/#", "$SYS/#"] },
  anonymous: { publish: ["public/#"], subscribe: ["public/#"] },
};

function access(anonymous: boolean): MqttAccess {
  return { auth, config: { anonymous, acl: ACL } as unknown as MqttAccess["config"] };
}

function client(id: string, will?: { topic: string }): Client {
  return { id, _will: will ?? null } as unknown as Client;
}

/** CONNECT: resolves with aedes' callback arguments (the error's returnCode, or admitted). */
function connect(hooks: ReturnType<typeof aclHooks>, c: Client, password?: string | Buffer): Promise<{ returnCode?: number; message?: string; admitted: boolean }> {
  return new Promise((resolve) => {
    const pass = typeof password === "string" ? Buffer.from(password) : password;
    hooks.authenticate!(c, "user", pass as Buffer, (err, admitted) => {
      const e = err as (Error & { returnCode?: number }) | null;
      resolve(e ? { returnCode: e.returnCode, message: e.message, admitted: Boolean(admitted) } : { admitted: Boolean(admitted) });
    });
  });
}

function publish(hooks: ReturnType<typeof aclHooks>, c: Client | null, topic: string, retain = true) {
  const packet = { topic, retain, payload: Buffer.from("x"), qos: 0, cmd: "publish" };
  let answered = false;
  hooks.authorizePublish!(c as Client, packet as never, (err) => {
    expect(err).toBeNull();
    answered = true;
  });
  expect(answered).toBe(true);
  return { topic: packet.topic, retain: packet.retain };
}

function subscribe(hooks: ReturnType<typeof aclHooks>, c: Client, topic: string): boolean {
  let granted: unknown;
  hooks.authorizeSubscribe!(c, { topic, qos: 0 } as never, (err, sub) => {
    expect(err).toBeNull();
    granted = sub;
  });
  return granted !== null && granted !== undefined;
}

function forwarded(hooks: ReturnType<typeof aclHooks>, c: Client, topic: string): boolean {
  const packet = { topic, payload: Buffer.from("x"), qos: 0, cmd: "publish", retain: false };
  return hooks.authorizeForward!(c, packet as never) === packet;
}

describe("CONNECT", () => {
  test("without credentials: refused (5, not authorized) unless anonymous clients are allowed; an empty password is none", async () => {
    const closed = aclHooks(log, access(false));
    expect(await connect(closed, client("a"))).toEqual({ returnCode: 5, message: "credentials required", admitted: false });
    expect(await connect(closed, client("b"), Buffer.alloc(0))).toMatchObject({ returnCode: 5, admitted: false });
    const open = aclHooks(log, access(true));
    const anon = client("c");
    expect(await connect(open, anon)).toEqual({ admitted: true });
    expect(publish(open, anon, "public/x").topic).toBe("public/x");
    expect(publish(open, anon, "devices/x/y").topic).toBe("$denied");
  });

  test("a credential that proves no identity: refused (4, bad user name or password), at once or later", async () => {
    const hooks = aclHooks(log, access(false));
    expect(await connect(hooks, client("a"), "nope")).toEqual({ returnCode: 4, message: "invalid API key", admitted: false });
    expect(await connect(hooks, client("b"), "later")).toEqual({ returnCode: 4, message: "expired token", admitted: false });
  });

  test("a credential that proves one: admitted, and that identity's rules apply", async () => {
    const hooks = aclHooks(log, access(false));
    const sensor = client("s");
    expect(await connect(hooks, sensor, "sensor-key")).toEqual({ admitted: true });
    expect(publish(hooks, sensor, "devices/sensor-1/temp")).toEqual({ topic: "devices/sensor-1/temp", retain: true });
    expect(publish(hooks, sensor, "devices/sensor-2/temp")).toEqual({ topic: "$denied", retain: false });
  });

  test("a will the client could not publish is refused at CONNECT (5): a reserved topic, or one its ACL denies", async () => {
    const hooks = aclHooks(log, access(false));
    expect(await connect(hooks, client("w1", { topic: "events/x" }), "sensor-key")).toEqual({ returnCode: 5, message: "will topic events/x is reserved", admitted: false });
    expect(await connect(hooks, client("w2", { topic: "devices/sensor-2/gone" }), "sensor-key")).toEqual({
      returnCode: 5,
      message: "will topic devices/sensor-2/gone is not allowed by the ACL",
      admitted: false,
    });
    expect(await connect(hooks, client("w3", { topic: "devices/sensor-1/gone" }), "sensor-key")).toEqual({ admitted: true });
  });

  test("with authentication off anyone connects, but a will on a reserved topic is still refused", async () => {
    const hooks = aclHooks(log);
    expect(await connect(hooks, client("a"))).toEqual({ admitted: true });
    expect(await connect(hooks, client("b", { topic: "$platform/x" }))).toMatchObject({ returnCode: 5, admitted: false });
  });
});

describe("PUBLISH", () => {
  test("to a reserved topic: acknowledged and dropped, never retained, whoever sends it", () => {
    const hooks = aclHooks(log);
    for (const topic of ["events", "events/svc/x", "$platform/x", "$SYS/broker/uptime"]) {
      expect([topic, publish(hooks, client("a"), topic)]).toEqual([topic, { topic: "$denied", retain: false }]);
    }
    // Topics that only look like the platform's roots are the clients' own.
    for (const topic of ["eventsx/y", "event/x", "$platformx/y", "$SYSTEM/x", "undefined", "undefined/x", "x/events"]) {
      expect([topic, publish(hooks, client("a"), topic)]).toEqual([topic, { topic, retain: true }]);
    }
  });

  test("a will from a client of a previous run (no client) is not checked against an ACL again, only against reserved topics", () => {
    const hooks = aclHooks(log, access(false));
    expect(publish(hooks, null, "devices/anyone/gone")).toEqual({ topic: "devices/anyone/gone", retain: true });
    expect(publish(hooks, null, "events/x").topic).toBe("$denied");
  });

  test("an anonymous client has no identity: a deny rule with %u refuses the level for every value", async () => {
    const acl = { anonymous: { publish: ["devices/#"], subscribe: [], deny: { publish: ["devices/%u/config"], subscribe: [] } } };
    const hooks = aclHooks(log, { auth, config: { anonymous: true, acl } as unknown as MqttAccess["config"] });
    const anon = client("anon");
    expect(await connect(hooks, anon)).toEqual({ admitted: true });
    expect(publish(hooks, anon, "devices/sensor-1/temp").topic).toBe("devices/sensor-1/temp");
    expect(publish(hooks, anon, "devices/sensor-1/config").topic).toBe("$denied");
    expect(publish(hooks, anon, "devices/anonymous/config").topic).toBe("$denied");
  });

  test("from a client that never proved an identity: dropped", () => {
    const hooks = aclHooks(log, access(true));
    expect(publish(hooks, client("stranger"), "public/x").topic).toBe("$denied");
  });
});

describe("SUBSCRIBE and forwarding", () => {
  test("the dropped-publish topic can never be subscribed to, even with authentication off", () => {
    const hooks = aclHooks(log);
    expect(subscribe(hooks, client("a"), "$denied")).toBe(false);
    expect(subscribe(hooks, client("a"), "$denied/x")).toBe(false);
    expect(subscribe(hooks, client("a"), "news/#")).toBe(true);
    // Nor is a dropped publish forwarded to anyone.
    expect(forwarded(hooks, client("a"), "$denied")).toBe(false);
    expect(forwarded(hooks, client("a"), "news/today")).toBe(true);
  });

  test("a subscription is granted as the client's ACL allows", async () => {
    const hooks = aclHooks(log, access(false));
    const sensor = client("s");
    await connect(hooks, sensor, "sensor-key");
    expect(subscribe(hooks, sensor, "commands/sensor-1/#")).toBe(true);
    expect(subscribe(hooks, sensor, "commands/sensor-2/#")).toBe(false);
  });

  test("forwarded: what the ACL allows; never a dropped publish nor aedes' own $SYS messages", async () => {
    const hooks = aclHooks(log, access(false));
    const sensor = client("s");
    await connect(hooks, sensor, "sensor-key");
    expect(forwarded(hooks, sensor, "commands/sensor-1/reboot")).toBe(true);
    expect(forwarded(hooks, sensor, "commands/sensor-2/reboot")).toBe(false);
    expect(forwarded(hooks, sensor, "$SYS/broker/uptime")).toBe(true);
    expect(forwarded(hooks, sensor, "$SYS/abc123/heartbeat")).toBe(false);
    expect(forwarded(hooks, sensor, "$denied")).toBe(false);
    expect(forwarded(hooks, client("stranger"), "commands/sensor-1/reboot")).toBe(false);
  });

  test("a client's decisions stay right past the number remembered per client", async () => {
    const hooks = aclHooks(log, access(false));
    const sensor = client("s");
    await connect(hooks, sensor, "sensor-key");
    for (let i = 0; i < 600; i++) {
      expect(forwarded(hooks, sensor, `commands/sensor-1/${i}`)).toBe(true);
      expect(forwarded(hooks, sensor, `commands/other/${i}`)).toBe(false);
    }
  });
});
