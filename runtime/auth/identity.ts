/**
 * Who is calling: the identity a token or an API key proves. Handlers see it as
 * `ctx.identity`; calls they make carry it on to the callee.
 */
export interface Identity {
  /** The token's subject, or the API key's name. */
  sub: string;
  roles: string[];
  /** How it was proven ("anonymous": not at all, an MQTT client let in by auth.mqtt.anonymous). */
  via: "jwt" | "key" | "anonymous";
}

/** The role MQTT clients get when `auth.mqtt.anonymous` lets them in without credentials. */
export const ANONYMOUS_ROLE = "anonymous";
