/**
 * Turns credentials into an Identity: API keys (`plk_…`) by lookup in the auth
 * service's database, anything else as a JWT. Used by the gateway (headers) and
 * the broker (CONNECT password).
 */
import type { Config } from "../../config/schema";
import { systemClock, type Clock } from "../breaker/clock";
import { PlinthError } from "../errors";
import type { Identity } from "./identity";
import { createJwtVerifier, type JwtVerifier } from "./jwt";
import { KeyLookup, looksLikeKey } from "./keys";

export class Authenticator {
  private constructor(
    private readonly jwt: JwtVerifier | null,
    private readonly keys: KeyLookup,
  ) {}

  /** `clock` gives the wall time JWTs are checked against (exp, nbf); the real time by default. */
  static async create(config: Readonly<Config>, clock: Clock = systemClock): Promise<Authenticator> {
    return new Authenticator(await createJwtVerifier(config.auth.jwt, clock), new KeyLookup(config.data.dir));
  }

  /** The identity an API key or a JWT proves; PLT_UNAUTHENTICATED when it proves none. */
  verify(credential: string): Identity | Promise<Identity> {
    if (looksLikeKey(credential)) {
      const identity = this.keys.find(credential);
      if (!identity) throw new PlinthError("PLT_UNAUTHENTICATED", "invalid API key (unknown or revoked)", { data: { reason: "invalid_token" } });
      return identity;
    }
    if (!this.jwt) throw new PlinthError("PLT_UNAUTHENTICATED", "bearer tokens are not accepted: no auth.jwt key is configured", { data: { reason: "invalid_token" } });
    return this.jwt(credential);
  }

  /**
   * The caller of an HTTP request, from `Authorization: Bearer <jwt or key>` or `X-API-Key`;
   * null when the request carries no credentials.
   */
  fromHeaders(headers: Headers): Identity | Promise<Identity> | null {
    const key = headers.get("x-api-key");
    if (key !== null) return this.verify(key.trim());
    const authorization = headers.get("authorization");
    if (authorization === null) return null;
    const space = authorization.indexOf(" ");
    const scheme = space < 0 ? authorization : authorization.slice(0, space);
    const credential = space < 0 ? "" : authorization.slice(space + 1).trim();
    if (scheme.toLowerCase() !== "bearer" || credential === "") {
      throw new PlinthError("PLT_UNAUTHENTICATED", "Authorization must be \"Bearer <token or API key>\"", { data: { reason: "invalid_request" } });
    }
    return this.verify(credential);
  }

  close(): void {
    this.keys.close();
  }
}
