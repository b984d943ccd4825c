/** JWT verification: claims, the roles claim's shapes, remembered tokens and their expiry, which key checks which algorithm. */
import { afterEach, describe, expect, setSystemTime, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { SignJWT, exportJWK, exportSPKI, generateKeyPair } from "jose";
import { Value } from "@sinclair/typebox/value";
import { ConfigSchema, type Config } from "../../../config/schema";
import { createJwtVerifier, type JwtVerifier } from "../../../runtime/auth/jwt";
import { rejection } from "../../helpers/errors";
import { tempDir } from "../../helpers/tmp";

const jwtConfig = (jwt: Partial<Config["auth"]["jwt"]>) => (Value.Default(ConfigSchema, { auth: { jwt } }) as Config).auth.jwt;
const SECRET = "0123456789abcdef0123456789abcdef";
const KEY = new TextEncoder().encode(SECRET);
const hs256 = (claims: Record<string, unknown> = {}) => new SignJWT(claims).setProtectedHeader({ alg: "HS256" });
const verifier = async (jwt: Partial<Config["auth"]["jwt"]> = {}): Promise<JwtVerifier> => (await createJwtVerifier(jwtConfig({ secret: SECRET, ...jwt })))!;
const outcome = (verify: JwtVerifier, token: string) => Promise.resolve().then(() => verify(token));

afterEach(() => {
  setSystemTime();
});

describe("claims", () => {
  test("the audience is enforced when configured", async () => {
    const verify = await verifier({ audience: "plinth" });
    const other = await hs256().setSubject("s").setAudience("someone-else").sign(KEY);
    const err = await rejection(outcome(verify, other));
    expect([err.code, err.message]).toEqual(["PLT_UNAUTHENTICATED", 'invalid bearer token: token claim "aud" is not accepted']);
    expect((await verify(await hs256().setSubject("s").setAudience("plinth").sign(KEY))).sub).toBe("s");
  });

  test("a token without a subject proves nobody: its message says the claim is missing", async () => {
    const verify = await verifier();
    const err = await rejection(outcome(verify, await hs256().sign(KEY)));
    expect(err.message).toBe('invalid bearer token: token claim "sub" missing');
  });

  test("roles: strings only from an array; a string split on spaces and commas; none without the claim", async () => {
    const verify = await verifier();
    const roles = async (claim: unknown) => (await verify(await hs256(claim === undefined ? {} : { roles: claim }).setSubject("s").sign(KEY))).roles;
    expect(await roles(["a", 1, null, "b"])).toEqual(["a", "b"]);
    expect(await roles("  read, write  ")).toEqual(["read", "write"]);
    expect(await roles(undefined)).toEqual([]);
    expect(await roles(7)).toEqual([]);
  });
});

describe("a verified token is remembered until it expires", () => {
  test("past its exp it is checked again, and refused as expired", async () => {
    const now = Date.now();
    setSystemTime(new Date(now));
    const verify = await verifier({ clockToleranceSeconds: 0 });
    const exp = Math.floor(now / 1000) + 60;
    const token = await hs256().setSubject("s").setExpirationTime(exp).sign(KEY);
    expect((await verify(token)).sub).toBe("s");
    expect((await verify(token)).sub).toBe("s");
    setSystemTime(new Date(exp * 1000));
    const err = await rejection(outcome(verify, token));
    expect(err.message).toBe("invalid bearer token: token expired");
  });
});

describe("keys", () => {
  test("with both a secret and a PEM, each algorithm is checked with its own key", async () => {
    using dir = tempDir();
    const { publicKey, privateKey } = await generateKeyPair("RS256");
    writeFileSync(dir.join("key.pem"), await exportSPKI(publicKey));
    const verify = await verifier({ publicKeyFile: dir.join("key.pem") });
    expect((await verify(await new SignJWT({}).setProtectedHeader({ alg: "RS256" }).setSubject("rsa").sign(privateKey))).sub).toBe("rsa");
    expect((await verify(await hs256().setSubject("hmac").sign(KEY))).sub).toBe("hmac");
  });

  test("an algorithm the PEM's key does not suit: no key matches the token", async () => {
    using dir = tempDir();
    const rsa = await generateKeyPair("RS256");
    writeFileSync(dir.join("key.pem"), await exportSPKI(rsa.publicKey));
    const verify = (await createJwtVerifier(jwtConfig({ publicKeyFile: dir.join("key.pem") })))!;
    const ec = await generateKeyPair("ES256");
    const err = await rejection(outcome(verify, await new SignJWT({}).setProtectedHeader({ alg: "ES256" }).setSubject("s").sign(ec.privateKey)));
    expect(err.message).toBe("invalid bearer token: no key matches the token");
  });

  test("HS256 is checked only with auth.jwt.secret: a symmetric key in the JWKS file verifies nothing", async () => {
    using dir = tempDir();
    writeFileSync(dir.join("jwks.json"), JSON.stringify({ keys: [{ ...(await exportJWK(KEY)), kid: "k1", alg: "HS256" }] }));
    const verify = (await createJwtVerifier(jwtConfig({ jwksFile: dir.join("jwks.json") })))!;
    const err = await rejection(outcome(verify, await new SignJWT({}).setProtectedHeader({ alg: "HS256", kid: "k1" }).setSubject("s").sign(KEY)));
    expect(err.message).toBe("invalid bearer token: no key matches the token");
  });

  test("an unreadable JWKS file is reported as unreadable, not as a file that is not a key set", async () => {
    using dir = tempDir();
    const err = await rejection(createJwtVerifier(jwtConfig({ jwksFile: dir.join("missing.json") })));
    expect(err.message).toStartWith(`auth.jwt.jwksFile: cannot read ${dir.join("missing.json")}: `);
    expect(err.message).not.toContain("not a JSON Web Key Set");
  });

  test("key files that cannot be used are PLT_CONFIG_INVALID, naming the field", async () => {
    using dir = tempDir();
    writeFileSync(dir.join("bad.pem"), "not a key");
    writeFileSync(dir.join("k.json"), JSON.stringify({ keys: [] }));
    const config = (jwt: Partial<Config["auth"]["jwt"]>) => createJwtVerifier(jwtConfig(jwt));
    const cases: Array<[Partial<Config["auth"]["jwt"]>, string]> = [
      [{ publicKeyFile: dir.join("missing.pem") }, "auth.jwt.publicKeyFile: cannot read"],
      [{ jwksFile: dir.join("missing.json") }, "auth.jwt.jwksFile: cannot read"],
      [{ publicKeyFile: dir.join("bad.pem"), algorithms: ["RS256", "ES256"] }, "is not a PEM public key (SPKI) for RS256, ES256"],
      [{ publicKeyFile: dir.join("bad.pem"), jwksFile: dir.join("k.json") }, "not both"],
    ];
    for (const [jwt, message] of cases) {
      const err = await rejection(config(jwt));
      expect([err.code, err.message.includes(message) ? message : err.message]).toEqual(["PLT_CONFIG_INVALID", message]);
    }
    const notJson = dir.join("bad.json");
    writeFileSync(notJson, "{");
    expect((await rejection(config({ jwksFile: notJson }))).code).toBe("PLT_CONFIG_INVALID");
  });
});
