import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { SignJWT, exportJWK, exportSPKI, generateKeyPair } from "jose";
import { Value } from "@sinclair/typebox/value";
import { ConfigSchema, type Config } from "../../../config/schema";
import { createJwtVerifier } from "../../../runtime/auth/jwt";
import { PlinthError } from "../../../runtime/errors";
import { tempDir } from "../../helpers/tmp";

const jwtConfig = (jwt: Partial<Config["auth"]["jwt"]>) => (Value.Default(ConfigSchema, { auth: { jwt } }) as Config).auth.jwt;
const SECRET = "0123456789abcdef0123456789abcdef";

describe("JWT verification", () => {
  test("no key configured: no verifier", async () => {
    expect(await createJwtVerifier(jwtConfig({}))).toBeNull();
  });

  test("HS256: identity from sub and the roles claim (array or string)", async () => {
    const verify = (await createJwtVerifier(jwtConfig({ secret: SECRET, rolesClaim: "scope" })))!;
    const sign = (claims: object) => new SignJWT({ ...claims }).setProtectedHeader({ alg: "HS256" }).setSubject("ann").setExpirationTime("1m").sign(new TextEncoder().encode(SECRET));
    expect(await verify(await sign({ scope: ["a", "b"] }))).toEqual({ sub: "ann", roles: ["a", "b"], via: "jwt" });
    expect(await verify(await sign({ scope: "read write" }))).toEqual({ sub: "ann", roles: ["read", "write"], via: "jwt" });
  });

  test("issuer and audience are enforced when configured", async () => {
    const verify = (await createJwtVerifier(jwtConfig({ secret: SECRET, issuer: "https://id.example", audience: "plinth" })))!;
    const key = new TextEncoder().encode(SECRET);
    const good = await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject("s").setIssuer("https://id.example").setAudience("plinth").sign(key);
    const wrong = await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject("s").setIssuer("https://evil.example").setAudience("plinth").sign(key);
    const nobody = await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setIssuer("https://id.example").setAudience("plinth").sign(key);
    await expect(verify(nobody)).rejects.toThrow(/claim "sub"/);
    expect((await verify(good)).via).toBe("jwt");
    await expect(verify(wrong)).rejects.toThrow(/claim "iss"/);
  });

  test("RS256 with a PEM public key; the same token with the key swapped fails", async () => {
    using dir = tempDir();
    const { publicKey, privateKey } = await generateKeyPair("RS256");
    writeFileSync(dir.join("key.pem"), await exportSPKI(publicKey));
    const verify = (await createJwtVerifier(jwtConfig({ publicKeyFile: dir.join("key.pem") })))!;
    const token = await new SignJWT({ roles: ["admin"] }).setProtectedHeader({ alg: "RS256" }).setSubject("svc").sign(privateKey);
    expect(await verify(token)).toEqual({ sub: "svc", roles: ["admin"], via: "jwt" });
    const other = await generateKeyPair("RS256");
    const forged = await new SignJWT({ roles: ["admin"] }).setProtectedHeader({ alg: "RS256" }).sign(other.privateKey);
    await expect(verify(forged)).rejects.toThrow(/signature/);
    // An HS256 token must not be checked against the public key's bytes (algorithm confusion).
    const confused = await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode(await exportSPKI(publicKey)));
    await expect(verify(confused)).rejects.toThrow(PlinthError);
  });

  test("ES256 with a JWKS file: the token's kid picks the key", async () => {
    using dir = tempDir();
    const { publicKey, privateKey } = await generateKeyPair("ES256");
    writeFileSync(dir.join("jwks.json"), JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256", use: "sig" }] }));
    const verify = (await createJwtVerifier(jwtConfig({ jwksFile: dir.join("jwks.json") })))!;
    const token = await new SignJWT({}).setProtectedHeader({ alg: "ES256", kid: "k1" }).setSubject("dev").sign(privateKey);
    expect((await verify(token)).sub).toBe("dev");
    const unknownKid = await new SignJWT({}).setProtectedHeader({ alg: "ES256", kid: "k2" }).sign(privateKey);
    await expect(verify(unknownKid)).rejects.toThrow(/no key matches/);
  });

  test("unreadable or invalid key files are config errors naming the field", async () => {
    using dir = tempDir();
    writeFileSync(dir.join("bad.pem"), "not a key");
    writeFileSync(dir.join("bad.json"), "{");
    const fails = (jwt: Partial<Config["auth"]["jwt"]>) => createJwtVerifier(jwtConfig(jwt));
    await expect(fails({ publicKeyFile: dir.join("missing.pem") })).rejects.toThrow(/auth\.jwt\.publicKeyFile: cannot read/);
    await expect(fails({ publicKeyFile: dir.join("bad.pem") })).rejects.toThrow(/auth\.jwt\.publicKeyFile: .* is not a PEM public key/);
    await expect(fails({ jwksFile: dir.join("bad.json") })).rejects.toThrow(/auth\.jwt\.jwksFile: not a JSON Web Key Set/);
  });
});

test("a PEM and a JWKS file at once is a config error", async () => {
  using dir = tempDir();
  const { publicKey } = await generateKeyPair("ES256");
  writeFileSync(dir.join("k.pem"), await exportSPKI(publicKey));
  writeFileSync(dir.join("k.json"), JSON.stringify({ keys: [] }));
  await expect(createJwtVerifier(jwtConfig({ publicKeyFile: dir.join("k.pem"), jwksFile: dir.join("k.json") }))).rejects.toThrow(/not both/);
});
