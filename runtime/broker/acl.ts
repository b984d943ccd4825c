/**
 * Who may connect to the broker and what they may touch (aedes hooks).
 *
 * - Platform namespaces are read-only for clients: `events/#` belongs to services
 *   (each to its own `events/<service>/#`, enforced where services emit),
 *   `$platform/#` and `$SYS/#` to the runtime.
 * - With `access` (auth on), clients prove an identity at CONNECT (password = API
 *   key or JWT) unless anonymous clients are allowed, and a per-role ACL of topic
 *   filters, allow and deny, decides what they may publish and subscribe to (`%u` =
 *   identity, `%c` = client id; the most specific rule wins, a deny wins a tie: acl-rules.ts).
 *   What a client subscribes to is checked again for each message forwarded to it: a
 *   subscription to `#` gets nothing on a denied topic.
 * - aedes' own `$SYS/<broker id>/...` messages are never forwarded to clients (isBrokerInternal).
 * - A denied SUBSCRIBE gets the failure return code 0x80 [MQTT-3.9.3-2]; a denied
 *   PUBLISH is acknowledged as usual and dropped, never delivered [MQTT-3.3.5-2].
 */
import type { AedesOptions, Client } from "aedes";
import type { Config } from "../../config/schema";
import type { Authenticator } from "../auth/authenticator";
import { ANONYMOUS_ROLE, type Identity } from "../auth/identity";
import type { Logger } from "../log";
import { Topics } from "../protocol";
import { compileRules, decide, type Action, type Rule } from "./acl-rules";

export { covers, decide } from "./acl-rules";

const RESERVED = [Topics.eventsRoot, Topics.platformRoot, "$SYS"];
const RESERVED_PREFIXES = RESERVED.map((root) => `${root}/`);
/** Topic decisions remembered per client and action, up to this many (then forgotten and relearned). */
const DECISIONS_PER_CLIENT = 256;
/** Where denied publishes go: a topic no client may subscribe to and nothing forwards. */
const DROPPED = "$denied";

/** The root itself counts too: the filter `events/#` matches the topic `events` [MQTT-4.7.1-2]. */
export function isReservedTopic(topic: string): boolean {
  for (let i = 0; i < RESERVED.length; i++) if (topic === RESERVED[i] || topic.startsWith(RESERVED_PREFIXES[i]!)) return true;
  return false;
}

/**
 * aedes' own `$SYS/<broker id>/...` messages (heartbeat, birth, new/clients, disconnect/clients,
 * new/subscribes, new/unsubscribes): for aedes' own listeners only, never forwarded to a client (they
 * carry other clients' ids and subscriptions). Plinth's statistics are `$SYS/broker/...` (sys.ts).
 */
export function isBrokerInternal(topic: string): boolean {
  return topic.charCodeAt(0) === 36 /* $ */ && topic.startsWith("$SYS/") && !topic.startsWith("$SYS/broker/");
}

export interface MqttAccess {
  auth: Authenticator;
  config: Config["auth"]["mqtt"];
}

/** What a client's decisions need, per action: its rules, and what they decided per topic. */
type Known = Record<Action, { rules: Rule[]; byTopic: Map<string, boolean> } | null>;

type Hooks = Pick<AedesOptions, "authenticate" | "authorizePublish" | "authorizeSubscribe" | "authorizeForward">;

/** `access` null: no authentication; every client may do anything outside the platform namespaces. */
export function aclHooks(log: Logger, access: MqttAccess | null = null): Hooks {
  const identities = new WeakMap<Client, Identity>();
  // A client's identity is fixed for its connection: its rules are compiled once, and each topic is
  // decided once per action (also at forward time, for every message to the client).
  const decisions = new WeakMap<Client, Known>();
  const may = (client: Client, action: Action, topic: string): boolean => {
    if (!access) return true;
    const identity = identities.get(client);
    if (!identity) return false;
    let known = decisions.get(client);
    if (!known) decisions.set(client, (known = { publish: null, subscribe: null }));
    let k = known[action];
    if (!k) {
      const rules = compileRules(access.config.acl, identity.roles, action, identity.sub, client.id, isReservedTopic);
      k = known[action] = { rules, byTopic: new Map() };
    }
    let allowed = k.byTopic.get(topic);
    if (allowed === undefined) {
      allowed = decide(k.rules, topic);
      if (k.byTopic.size >= DECISIONS_PER_CLIENT) k.byTopic.clear();
      k.byTopic.set(topic, allowed);
    }
    return allowed;
  };
  const drop = (client: Client | null, packet: { topic: string; retain: boolean }, reason: string) => {
    log.warn("publish dropped", { client: client?.id ?? "(will of a client gone before a restart)", topic: packet.topic, reason });
    packet.topic = DROPPED;
    packet.retain = false;
  };
  /** Why a will may not be accepted at CONNECT, if it may not: it is published later, maybe with no client to check. */
  const willProblem = (client: Client): string | null => {
    const will = (client as unknown as { _will?: { topic: string } | null })._will;
    if (!will) return null;
    if (isReservedTopic(will.topic)) return `will topic ${will.topic} is reserved`;
    if (!may(client, "publish", will.topic)) return `will topic ${will.topic} is not allowed by the ACL`;
    return null;
  };

  const hooks: Hooks = {
    authorizePublish(client, packet, callback) {
      // The runtime's own publishes do not come here; client is null for the will of a client that
      // was connected to a previous run (its will was checked at its CONNECT; checked again here).
      if (isReservedTopic(packet.topic)) drop(client, packet, "reserved topic");
      else if (client && !may(client, "publish", packet.topic)) drop(client, packet, "not allowed by the ACL");
      callback(null);
    },
    authorizeSubscribe(client, subscription, callback) {
      const topic = subscription.topic;
      if (topic === DROPPED || topic.startsWith(`${DROPPED}/`) || !may(client, "subscribe", topic)) {
        log.warn("subscribe denied", { client: client.id, filter: topic });
        return callback(null, null);
      }
      callback(null, subscription);
    },
    authorizeForward(client, packet) {
      if (packet.topic === DROPPED || isBrokerInternal(packet.topic)) return null;
      // Also what a persistent session had queued: a client id taken over by another identity, or a
      // subscription the ACL no longer grants, must not carry messages to this client.
      return may(client, "subscribe", packet.topic) ? packet : null;
    },
  };

  hooks.authenticate = (client, _username, password, callback) => {
    const fail = (returnCode: number, message: string) => {
      log.warn("MQTT connect refused", { client: client.id, reason: message });
      callback(Object.assign(new Error(message), { returnCode }) as Parameters<typeof callback>[0], false);
    };
    const admit = (identity: Identity | null) => {
      if (identity) identities.set(client, identity);
      const problem = willProblem(client);
      if (problem) return fail(5, problem); // 5: not authorized
      callback(null, true);
    };
    if (!access) return admit(null);
    if (!password || password.length === 0) {
      if (!access.config.anonymous) return fail(5, "credentials required");
      // No identity to substitute: %u matches nothing for anonymous clients.
      return admit({ sub: "", roles: [ANONYMOUS_ROLE], via: "anonymous" });
    }
    try {
      Promise.resolve(access.auth.verify(password.toString("utf8"))).then(admit, (err: Error) => fail(4, err.message)); // 4: bad user name or password
    } catch (err) {
      fail(4, (err as Error).message);
    }
  };
  return hooks;
}
