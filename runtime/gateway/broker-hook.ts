/**
 * The identities and ACL of this platform for an outside MQTT broker (`auth.mqtt.brokerHook`), in the
 * shape of EMQX's HTTP authentication and authorization and mosquitto-go-auth's HTTP backend:
 *
 * - `POST /broker/authenticate` `{ clientid, username, password }`: the password is an API key or a JWT
 *   (empty: anonymous, when `auth.mqtt.anonymous`). Answers `{ result: "allow", is_superuser }` or
 *   `{ result: "deny" }`. A client whose identity has role "cluster-node" (a node of the cluster) is a
 *   superuser: it may publish on the platform's namespaces.
 * - `POST /broker/authorize` `{ clientid, username, topic, action }` (action "publish" or "subscribe";
 *   mosquitto-go-auth's `acc` 1 read, 2 write, 4 subscribe too): the ACL of the identity the client
 *   authenticated with (remembered per client id, as the broker does not send the password again).
 *
 * `?mode=status` answers a denial with 403 instead of a JSON "deny" (mosquitto-go-auth's status mode).
 * The broker's own requests must carry an API key with role "broker" (X-API-Key or Authorization).
 */
import type { Config } from "../../config/schema";
import type { Authenticator } from "../auth/authenticator";
import { ANONYMOUS_ROLE, type Identity } from "../auth/identity";
import { isReservedTopic } from "../broker/acl";
import { compileRules, decide, type Action } from "../broker/acl-rules";
import { PlinthError } from "../errors";
import { readBody } from "./body";
import { errorResponse } from "./errors";

/** The role of the key an outside broker calls with. */
export const BROKER_ROLE = "broker";
/** The role of a cluster node's own key: a superuser on the broker. */
export const NODE_ROLE = "cluster-node";
/** Clients whose identity is remembered for their authorizations, at most (the oldest go first). */
const REMEMBERED = 10_000;

type Verdict = { result: "allow"; is_superuser: boolean } | { result: "deny" };

export interface BrokerHook {
  /** The caller (the broker) is allowed to ask: its key has role "broker". */
  admit(headers: Headers): Promise<void>;
  authenticate(body: unknown): Promise<Verdict>;
  authorize(body: unknown): Verdict;
}

export function brokerHook(auth: Authenticator, config: Readonly<Config["auth"]["mqtt"]>): BrokerHook {
  const identities = new Map<string, Identity>();
  const remember = (clientid: string, identity: Identity) => {
    identities.delete(clientid);
    identities.set(clientid, identity);
    if (identities.size > REMEMBERED) identities.delete(identities.keys().next().value!);
  };
  return {
    async admit(headers) {
      const caller = await auth.fromHeaders(headers);
      if (!caller) throw new PlinthError("PLT_UNAUTHENTICATED", `the broker hook needs an API key with role "${BROKER_ROLE}"`);
      if (!caller.roles.includes(BROKER_ROLE)) throw new PlinthError("PLT_FORBIDDEN", `the broker hook is for keys with role "${BROKER_ROLE}"`);
    },
    async authenticate(body) {
      const { clientid, password } = fields(body, ["clientid"], ["username", "password"]);
      let identity: Identity;
      if (!password) {
        if (!config.anonymous) return { result: "deny" };
        identity = { sub: "", roles: [ANONYMOUS_ROLE], via: "anonymous" };
      } else {
        try {
          identity = await auth.verify(password);
        } catch {
          return { result: "deny" };
        }
      }
      remember(clientid, identity);
      return { result: "allow", is_superuser: identity.roles.includes(NODE_ROLE) };
    },
    authorize(body) {
      const { clientid, topic, action, acc } = fields(body, ["clientid", "topic"], ["username", "action", "acc"]);
      const actions = actionsOf(action, acc);
      const identity = identities.get(clientid);
      if (!identity) return { result: "deny" };
      if (identity.roles.includes(NODE_ROLE)) return { result: "allow", is_superuser: true };
      const allowed = actions.every((wanted) => decide(compileRules(config.acl, identity.roles, wanted, identity.sub, clientid, isReservedTopic), topic));
      return allowed ? { result: "allow", is_superuser: false } : { result: "deny" };
    },
  };
}

/** The string fields a hook request must have (`required`) and may have (`optional`); 400 otherwise. */
function fields<R extends string, O extends string>(body: unknown, required: R[], optional: O[]): Record<R, string> & Partial<Record<O, string>> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new PlinthError("PLT_BAD_REQUEST", "the body must be a JSON object");
  const out: Record<string, string> = {};
  for (const name of [...required, ...optional]) {
    const value = (body as Record<string, unknown>)[name];
    if (value === undefined || value === null) {
      if ((required as string[]).includes(name)) throw new PlinthError("PLT_BAD_REQUEST", `${name} is required`);
      continue;
    }
    if (typeof value !== "string" && typeof value !== "number") throw new PlinthError("PLT_BAD_REQUEST", `${name} must be a string`);
    out[name] = String(value);
  }
  return out as Record<R, string> & Partial<Record<O, string>>;
}

/** EMQX's action, or mosquitto-go-auth's `acc` (1 read, 2 write, 3 both, 4 subscribe): what must all be allowed. */
function actionsOf(action: string | undefined, acc: string | undefined): Action[] {
  if (action === "publish" || action === "subscribe") return [action];
  if (acc === "2") return ["publish"];
  if (acc === "3") return ["publish", "subscribe"];
  if (acc === "1" || acc === "4") return ["subscribe"];
  throw new PlinthError("PLT_BAD_REQUEST", 'action must be "publish" or "subscribe" (or acc 1, 2, 3 or 4)');
}

/** Hook requests are small: a bound far below the gateway's own. */
const MAX_BODY_BYTES = 16 * 1024;

/**
 * `POST /broker/<check>`: the verdict as JSON, or the request's error (a PlinthError) as the gateway
 * answers errors; anything else is thrown, for the gateway's handler of internal errors.
 */
export async function answerHook(hook: BrokerHook, check: string, request: Request, config: Readonly<Config>): Promise<Response> {
  try {
    if (check !== "authenticate" && check !== "authorize") throw new PlinthError("PLT_NOT_FOUND", `no route POST /broker/${check}`);
    await hook.admit(request.headers);
    const body = await readBody(request, { maxBytes: MAX_BODY_BYTES, maxJsonDepth: config.gateway.maxJsonDepth }, Date.now() + config.gateway.requestTimeoutMs, true);
    const verdict = check === "authenticate" ? await hook.authenticate(body) : hook.authorize(body);
    const statusMode = new URL(request.url).searchParams.get("mode") === "status";
    return Response.json(verdict, { status: verdict.result === "deny" && statusMode ? 403 : 200 });
  } catch (err) {
    if (err instanceof PlinthError) return errorResponse(err);
    throw err;
  }
}
