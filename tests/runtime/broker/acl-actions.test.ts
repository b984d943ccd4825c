/**
 * Publish and subscribe are separate decisions: a role's `publish` list (and `deny.publish`) decides
 * what a client may publish and the will it may leave; its `subscribe` list (and `deny.subscribe`) what
 * it may subscribe to and what is forwarded to it. Every role here has topics in one list only, and
 * each topic is checked for both actions, in both orders, on one client (its decisions are remembered
 * per topic: a decision for one action must never answer the other).
 * A denied PUBLISH is acknowledged and dropped [MQTT-3.3.5-2]; a denied SUBSCRIBE is refused [MQTT-3.9.3-2].
 */
import { describe, expect, test } from "bun:test";
import type { Client } from "aedes";
import type { Authenticator } from "../../../runtime/auth/authenticator";
import { aclHooks, type MqttAccess } from "../../../runtime/broker/acl";
import { createLogger } from "../../../runtime/log";
import type { Identity } from "../../../runtime/protocol";

const log = createLogger({ level: "silent" });

const ACL = {
  // Reads the feed, its own inbox, one service's events and the breakers; writes its own reports.
  station: {
    publish: ["reports/%u/#", "feed/corrections/#"],
    subscribe: ["feed/#", "inbox/%c/#", "events/orders/#", "$platform/breakers/#", "$SYS/broker/#"],
    deny: { publish: ["reports/%u/draft"], subscribe: ["feed/internal/#"] },
  },
  // The same allow list for both actions; each deny list refuses one action only.
  shared: {
    publish: ["shared/#"],
    subscribe: ["shared/#"],
    deny: { publish: ["shared/readonly/#"], subscribe: ["shared/writeonly/#"] },
  },
  // May publish anywhere it may, subscribe to nothing.
  loud: { publish: ["#"], subscribe: [] },
  // May subscribe to everything, publish nothing.
  quiet: { publish: [], subscribe: ["#", "$platform/#"] },
};

/** Credentials are "<identity>:<role>,<role>". */
const auth = {
  verify(credential: string): Identity {
    const [sub, roles] = credential.split(":");
    return { sub: sub!, roles: roles!.split(","), via: "key" };
  },
} as unknown as Authenticator;

const access: MqttAccess = { auth, config: { anonymous: false, acl: ACL } as unknown as MqttAccess["config"] };

type Hooks = ReturnType<typeof aclHooks>;

/** A client admitted with `credential` on fresh hooks (or refused: then the CONNACK return code). */
async function connect(credential: string, clientId: string, will?: string): Promise<{ hooks: Hooks; client: Client; returnCode: number }> {
  const hooks = aclHooks(log, access);
  const client = { id: clientId, _will: will === undefined ? null : { topic: will } } as unknown as Client;
  const returnCode = await new Promise<number>((resolve) =>
    hooks.authenticate!(client, "user", Buffer.from(credential), (err, ok) => resolve(err ? ((err as { returnCode?: number }).returnCode ?? -1) : ok ? 0 : -1)),
  );
  return { hooks, client, returnCode };
}

/** Whether a PUBLISH on `topic` goes out as sent (not renamed to the dropped topic). */
function publishes({ hooks, client }: { hooks: Hooks; client: Client }, topic: string): boolean {
  const packet = { cmd: "publish", topic, payload: Buffer.from("x"), qos: 1, retain: false };
  hooks.authorizePublish!(client, packet as never, (err) => expect(err).toBeNull());
  return packet.topic === topic;
}

/** Whether a SUBSCRIBE to `filter` is granted. */
function subscribes({ hooks, client }: { hooks: Hooks; client: Client }, filter: string): boolean {
  let granted: unknown = "no answer";
  hooks.authorizeSubscribe!(client, { topic: filter, qos: 1 } as never, (err, sub) => {
    expect(err).toBeNull();
    granted = sub;
  });
  expect(granted).not.toBe("no answer");
  return granted !== null;
}

/** Whether a message on `topic` is forwarded to the client. */
function forwarded({ hooks, client }: { hooks: Hooks; client: Client }, topic: string): boolean {
  const packet = { cmd: "publish", topic, payload: Buffer.from("x"), qos: 0, retain: false };
  return hooks.authorizeForward!(client, packet as never) === packet;
}

/** Each topic: [may publish, may subscribe (and have it forwarded)]. */
const STATION: Array<[string, boolean, boolean]> = [
  ["reports/st-1/temp", true, false], // publish list only (%u)
  ["reports/st-1/draft", false, false], // denied for publishing
  ["feed/corrections/1", true, true], // in both lists
  ["feed/news", false, true], // subscribe list only
  ["feed/internal/x", false, false], // denied for subscribing
  ["inbox/box-9/msg", false, true], // subscribe list only (%c)
  ["inbox/st-1/msg", false, false], // %c is the client id, not the identity
  ["reports/box-9/temp", false, false], // %u is the identity, not the client id
  ["events/orders/created", false, true], // read-only platform namespace, readable by the ACL
  ["events/billing/paid", false, false],
  ["$platform/breakers/orders", false, true],
  ["$platform/services/orders", false, false],
  ["$SYS/broker/uptime", false, true],
];

describe("a role whose publish and subscribe lists differ", () => {
  for (const order of ["publish first", "subscribe first"] as const) {
    test(`each topic is decided by the list of its action (${order}, on one client)`, async () => {
      const c = await connect("st-1:station", "box-9");
      expect(c.returnCode).toBe(0);
      const seen = STATION.map(([topic]): [string, boolean, boolean] => {
        if (order === "publish first") {
          const pub = publishes(c, topic);
          return [topic, pub, subscribes(c, topic)];
        }
        const sub = subscribes(c, topic);
        return [topic, publishes(c, topic), sub];
      });
      expect(seen).toEqual(STATION);
      // What is forwarded follows the subscribe list, also after the publishes above were decided.
      expect(STATION.map(([topic]) => [topic, forwarded(c, topic)])).toEqual(STATION.map(([topic, , sub]) => [topic, sub]));
    });
  }

  test("wildcard filters: granted inside the subscribe list only", async () => {
    const c = await connect("st-1:station", "box-9");
    expect(subscribes(c, "feed/+")).toBe(true);
    expect(subscribes(c, "inbox/box-9/#")).toBe(true);
    expect(subscribes(c, "events/orders/#")).toBe(true);
    expect(subscribes(c, "$platform/breakers/+")).toBe(true);
    expect(subscribes(c, "reports/st-1/#")).toBe(false);
    expect(subscribes(c, "reports/+/temp")).toBe(false);
    expect(subscribes(c, "feed/internal/#")).toBe(false);
    expect(subscribes(c, "events/#")).toBe(false);
    expect(subscribes(c, "$platform/#")).toBe(false);
  });

  test("a will is checked against the publish list: one on a topic it may only subscribe to is refused (5)", async () => {
    expect((await connect("st-1:station", "box-9", "reports/st-1/status")).returnCode).toBe(0);
    expect((await connect("st-1:station", "box-9", "feed/news")).returnCode).toBe(5);
    expect((await connect("st-1:station", "box-9", "inbox/box-9/gone")).returnCode).toBe(5);
    expect((await connect("st-1:station", "box-9", "reports/st-1/draft")).returnCode).toBe(5);
  });
});

describe("deny rules refuse their own action only", () => {
  for (const order of ["publish first", "subscribe first"] as const) {
    test(`deny.publish leaves subscribing, deny.subscribe leaves publishing (${order})`, async () => {
      const c = await connect("sh-1:shared", "sh");
      const check = (topic: string) => (order === "publish first" ? [publishes(c, topic), subscribes(c, topic)] : [subscribes(c, topic), publishes(c, topic)].reverse());
      expect(check("shared/readonly/x")).toEqual([false, true]);
      expect(check("shared/writeonly/x")).toEqual([true, false]);
      expect(check("shared/open/x")).toEqual([true, true]);
      expect(forwarded(c, "shared/readonly/x")).toBe(true);
      expect(forwarded(c, "shared/writeonly/x")).toBe(false);
    });
  }
});

describe("one-sided roles", () => {
  test("publish '#' and no subscribe list: publishes outside the platform namespaces, subscribes to nothing", async () => {
    const c = await connect("l-1:loud", "l");
    for (const topic of ["a/b", "feed/news", "#", "+/x"]) expect([topic, subscribes(c, topic)]).toEqual([topic, false]);
    expect(forwarded(c, "a/b")).toBe(false);
    expect(publishes(c, "a/b")).toBe(true);
    expect(publishes(c, "feed/news")).toBe(true);
    // The platform's namespaces stay read-only, whatever the publish list says.
    for (const topic of ["events/orders/created", "$platform/breakers/orders", "$SYS/broker/uptime"]) expect([topic, publishes(c, topic)]).toEqual([topic, false]);
  });

  test("subscribe '#' and no publish list: subscribes and receives, publishes nothing, leaves no will", async () => {
    const c = await connect("q-1:quiet", "q");
    for (const topic of ["a/b", "#", "events/orders/#", "$platform/breakers/orders"]) expect([topic, subscribes(c, topic)]).toEqual([topic, true]);
    expect(forwarded(c, "events/orders/created")).toBe(true);
    expect(publishes(c, "a/b")).toBe(false);
    expect(publishes(c, "#")).toBe(false);
    expect((await connect("q-1:quiet", "q", "a/b")).returnCode).toBe(5);
  });

  test("two one-sided roles together: each action still uses its own lists", async () => {
    const c = await connect("lq-1:loud,station", "box-9");
    expect(publishes(c, "anything/at/all")).toBe(true); // loud
    expect(subscribes(c, "anything/at/all")).toBe(false);
    expect(subscribes(c, "feed/news")).toBe(true); // station
    expect(publishes(c, "reports/lq-1/draft")).toBe(false); // station's deny (3 literal levels) beats loud's "#"
  });
});
