/**
 * Verifies `Authorization: Bearer <jwt>` with jose: an HS256 secret, an RS256/ES256
 * public key (PEM) or a JWKS file, as configured. Verified tokens are remembered
 * until they expire (bounded), so a token costs one signature check, not one per request.
 * Time (exp, nbf, the cache's expiry) is read from a Clock's wall time, the real one by default.
 */
import { readFileSync } from "node:fs";
import { createLocalJWKSet, errors, importSPKI, jwtVerify, type JWTPayload, type JWTVerifyGetKey, type CryptoKey } from "jose";
import type { Config } from "../../config/schema";
import { systemClock, type Clock } from "../breaker/clock";
import { PlinthError } from "../errors";
import type { Identity } from "./identity";

/** Synchronous for a token already verified (and not expired): the common case costs no promise. */
export type JwtVerifier = (token: string) => Identity | Promise<Identity>;

const CACHE_LIMIT = 10_000;

/** null when no key is configured (tokens are then refused as unverifiable). */
export async function createJwtVerifier(config: Config["auth"]["jwt"], clock: Clock = systemClock): Promise<JwtVerifier | null> {
  const resolved = await keyResolver(config);
  if (!resolved) return null;
  const getKey: JWTVerifyGetKey = resolved;
  const options = {
    algorithms: config.algorithms,
    clockTolerance: config.clockToleranceSeconds,
    // The subject is the identity (cache and rate-limit keys, %u): a token without one proves nobody.
    requiredClaims: ["sub"],
    ...(config.issuer ? { issuer: config.issuer } : {}),
    ...(config.audience ? { audience: config.audience } : {}),
  };
  const verified = new Map<string, { identity: Identity; expiresAt: number }>();
  const epochMs = () => clock.epoch?.() ?? Date.now();

  return (token) => {
    const hit = verified.get(token);
    if (hit && hit.expiresAt > epochMs()) return hit.identity;
    if (hit) verified.delete(token);
    return verify(token);
  };

  async function verify(token: string): Promise<Identity> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, getKey, { ...options, currentDate: new Date(epochMs()) }));
    } catch (err) {
      throw invalidToken(err);
    }
    const identity: Identity = { sub: payload.sub!, roles: rolesOf(payload[config.rolesClaim]), via: "jwt" };
    if (verified.size >= CACHE_LIMIT) verified.delete(verified.keys().next().value!);
    verified.set(token, { identity, expiresAt: payload.exp ? payload.exp * 1000 : epochMs() + 60_000 });
    return identity;
  }
}

function rolesOf(claim: unknown): string[] {
  if (Array.isArray(claim)) return claim.filter((r): r is string => typeof r === "string");
  if (typeof claim === "string") return claim.split(/[\s,]+/).filter(Boolean);
  return [];
}

function invalidToken(err: unknown): PlinthError {
  const reason =
    err instanceof errors.JWTExpired ? "token expired"
    : err instanceof errors.JWSSignatureVerificationFailed ? "token signature does not verify"
    : err instanceof errors.JOSEAlgNotAllowed ? "token algorithm not allowed"
    : err instanceof errors.JWTClaimValidationFailed ? `token claim "${err.claim}" ${err.reason === "check_failed" ? "is not accepted" : err.reason}`
    : err instanceof errors.JWKSNoMatchingKey ? "no key matches the token"
    : "malformed token";
  return new PlinthError("PLT_UNAUTHENTICATED", `invalid bearer token: ${reason}`, { data: { reason: "invalid_token" } });
}

/** The configured keys, read once at start (paths are absolute after loadConfig); a missing or unreadable file is a config error naming the field. */
async function keyResolver(config: Config["auth"]["jwt"]): Promise<JWTVerifyGetKey | null> {
  const read = (field: string, file: string) => {
    try {
      return readFileSync(file, "utf8");
    } catch (err) {
      throw new PlinthError("PLT_CONFIG_INVALID", `auth.jwt.${field}: cannot read ${file}: ${(err as Error).message}`);
    }
  };
  if (config.publicKeyFile && config.jwksFile) {
    throw new PlinthError("PLT_CONFIG_INVALID", "auth.jwt: set publicKeyFile or jwksFile, not both");
  }
  const secret = config.secret ? new TextEncoder().encode(config.secret) : null;
  const pem = config.publicKeyFile ? read("publicKeyFile", config.publicKeyFile) : null;
  let jwks: JWTVerifyGetKey | null = null;
  if (config.jwksFile) {
    try {
      jwks = createLocalJWKSet(JSON.parse(read("jwksFile", config.jwksFile)));
    } catch (err) {
      if (err instanceof PlinthError) throw err;
      throw new PlinthError("PLT_CONFIG_INVALID", `auth.jwt.jwksFile: not a JSON Web Key Set: ${(err as Error).message}`);
    }
  }
  if (!secret && !pem && !jwks) return null;
  // The PEM holds one key: import it for every asymmetric algorithm it suits.
  const publicKeys = new Map<string, CryptoKey>();
  if (pem) {
    for (const alg of config.algorithms.filter((a) => a !== "HS256")) {
      await importSPKI(pem, alg).then((key) => publicKeys.set(alg, key), () => {});
    }
    if (publicKeys.size === 0) {
      throw new PlinthError("PLT_CONFIG_INVALID", `auth.jwt.publicKeyFile: ${config.publicKeyFile} is not a PEM public key (SPKI) for ${config.algorithms.join(", ")}`);
    }
  }
  return async (header, token) => {
    if (header.alg === "HS256" && secret) return secret;
    if (jwks && header.alg !== "HS256") return jwks(header, token);
    const key = publicKeys.get(header.alg ?? "");
    if (!key) throw new errors.JWKSNoMatchingKey();
    return key;
  };
}
