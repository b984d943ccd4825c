/**
 * The verified-token cache of the JWT path, on a fake clock: a verified token answers at once
 * until its `exp`, never past it, and a token is remembered whole (an altered signature is a
 * different token); `nbf` and the clock tolerance read the same clock.
 */
import { describe, expect, test } from "bun:test";
import { SignJWT } from "jose";
import { Value } from "@sinclair/typebox/value";
import { ConfigSchema, type Config } from "../../../config/schema";
import { Authenticator } from "../../../runtime/auth/authenticator";
import { createJwtVerifier, type JwtVerifier } from "../../../runtime/auth/jwt";
import type { Clock } from "../../../runtime/breaker/clock";
import type { Identity } from "../../../runtime/protocol";
import { rejection } from "../../helpers/errors";
import { tempDir } from "../../helpers/tmp";

const SECRET = "0123456789abcdef0123456789abcdef";
const KEY = new TextEncoder().encode(SECRET);
const jwtConfig = (jwt: Partial<Config["auth"]["jwt"]>) => (Value.Default(ConfigSchema, { auth: { jwt: { secret: SECRET, ...jwt } } }) as Config).auth.jwt;

/** 2030-01-01T00:00:00Z, far from the real time, so that a verifier reading the real clock fails. */
const T0 = Date.UTC(2030, 0, 1);
const S0 = T0 / 1000;

class FakeClock implements Clock {
  constructor(public at = T0) {}
  now = () => this.at;
  epoch = () => this.at;
}

const verifier = async (clock: Clock, jwt: Partial<Config["auth"]["jwt"]> = {}): Promise<JwtVerifier> => (await createJwtVerifier(jwtConfig(jwt), clock))!;
const token = (claims: { exp?: number; nbf?: number; sub?: string } = {}) => {
  const jwt = new SignJWT({ roles: ["reader"] }).setProtectedHeader({ alg: "HS256" }).setSubject(claims.sub ?? "ann").setIssuedAt(S0);
  if (claims.exp !== undefined) jwt.setExpirationTime(claims.exp);
  if (claims.nbf !== undefined) jwt.setNotBefore(claims.nbf);
  return jwt.sign(KEY);
};
const outcome = (verify: JwtVerifier, jwt: string) => Promise.resolve().then(() => verify(jwt));
const ANN: Identity = { sub: "ann", roles: ["reader"], via: "jwt" };

/** The message of a refusal, after checking it is a 401 for an invalid token. */
async function refused(verify: JwtVerifier, jwt: string): Promise<string> {
  const err = await rejection(outcome(verify, jwt));
  expect([err.code, err.status, err.data]).toEqual(["PLT_UNAUTHENTICATED", 401, { reason: "invalid_token" }]);
  return err.message;
}

/** A signature with one character in its middle changed (the last one may only hold padding bits). */
function alterSignature(jwt: string): string {
  const at = jwt.lastIndexOf(".") + 10;
  return jwt.slice(0, at) + (jwt[at] === "A" ? "B" : "A") + jwt.slice(at + 1);
}

describe("what is remembered", () => {
  test("a verified token answers at once (no promise) with the same identity; the first check is asynchronous", async () => {
    const verify = await verifier(new FakeClock());
    const jwt = await token({ exp: S0 + 60 });
    const first = verify(jwt);
    expect(first).toBeInstanceOf(Promise);
    expect(await first).toEqual(ANN);
    const again = verify(jwt);
    expect(again).not.toBeInstanceOf(Promise);
    expect(again).toEqual(ANN);
  });

  test("a token whose signature was altered after it verified is refused: the whole token is the key, signature included", async () => {
    const verify = await verifier(new FakeClock());
    const jwt = await token({ exp: S0 + 60 });
    expect(await verify(jwt)).toEqual(ANN);
    expect(await refused(verify, alterSignature(jwt))).toBe("invalid bearer token: token signature does not verify");
    // The same header and claims signed with another secret: as refused, however often it is tried.
    const [header, payload] = jwt.split(".");
    const other = await new SignJWT({ roles: ["reader"] }).setProtectedHeader({ alg: "HS256" }).setSubject("ann").setIssuedAt(S0).setExpirationTime(S0 + 60).sign(new TextEncoder().encode("another-secret-another-secret-32"));
    expect(other.startsWith(`${header}.${payload}.`)).toBe(true);
    for (let i = 0; i < 2; i++) expect(await refused(verify, other)).toBe("invalid bearer token: token signature does not verify");
    expect(verify(jwt)).toEqual(ANN); // the genuine token is still remembered
  });

  test("a token without exp is remembered for a minute, then checked again (and still accepted)", async () => {
    const clock = new FakeClock();
    const verify = await verifier(clock);
    const jwt = await token();
    expect(await verify(jwt)).toEqual(ANN);
    clock.at = T0 + 59_999;
    expect(verify(jwt)).toEqual(ANN);
    clock.at = T0 + 60_000;
    const checked = verify(jwt);
    expect(checked).toBeInstanceOf(Promise);
    expect(await checked).toEqual(ANN);
    expect(verify(jwt)).toEqual(ANN); // remembered again, for another minute
    clock.at = T0 + 119_999;
    expect(verify(jwt)).toEqual(ANN);
  });
});

describe("exp, nbf and the clock tolerance, on the verifier's clock", () => {
  test("a remembered token past its exp is refused as expired (tolerance 0: from exp on)", async () => {
    const clock = new FakeClock();
    const verify = await verifier(clock, { clockToleranceSeconds: 0 });
    const jwt = await token({ exp: S0 + 60 });
    expect(await verify(jwt)).toEqual(ANN);
    clock.at = (S0 + 60) * 1000 - 1;
    expect(verify(jwt)).toEqual(ANN);
    clock.at = (S0 + 60) * 1000;
    expect(await refused(verify, jwt)).toBe("invalid bearer token: token expired");
    expect(await refused(verify, jwt)).toBe("invalid bearer token: token expired");
  });

  test("past exp, a remembered token is accepted within the tolerance (5 s by default) and refused beyond it", async () => {
    const clock = new FakeClock();
    const verify = await verifier(clock);
    const jwt = await token({ exp: S0 + 60 });
    expect(await verify(jwt)).toEqual(ANN);
    clock.at = (S0 + 64) * 1000 + 999;
    expect(await verify(jwt)).toEqual(ANN);
    clock.at = (S0 + 65) * 1000;
    expect(await refused(verify, jwt)).toBe("invalid bearer token: token expired");
  });

  test("a token before its nbf is refused until the clock reaches nbf minus the tolerance", async () => {
    const clock = new FakeClock();
    const verify = await verifier(clock, { clockToleranceSeconds: 5 });
    const early = await token({ nbf: S0 + 6, exp: S0 + 60 });
    expect(await refused(verify, early)).toBe('invalid bearer token: token claim "nbf" is not accepted');
    expect(await verify(await token({ nbf: S0 + 5, exp: S0 + 60 }))).toEqual(ANN);
    clock.at = T0 + 1000;
    expect(await verify(early)).toEqual(ANN);
  });

  test("a token expired by the real time but not by the verifier's clock is accepted, and the other way round", async () => {
    const real = Math.floor(Date.now() / 1000);
    const past = await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject("s").setExpirationTime(real - 3600).sign(KEY);
    const future = await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject("s").setNotBefore(S0 - 60).sign(KEY);
    const verify = await verifier(new FakeClock(real * 1000 - 7200_000));
    expect((await verify(past)).sub).toBe("s");
    expect(await refused(verify, future)).toBe('invalid bearer token: token claim "nbf" is not accepted');
    // A clock without wall time: the real time.
    const wallless = await verifier({ now: () => 0 });
    expect(await refused(wallless, past)).toBe("invalid bearer token: token expired");
    expect(await refused(wallless, future)).toBe('invalid bearer token: token claim "nbf" is not accepted');
    expect((await wallless(await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject("t").setExpirationTime(real + 3600).sign(KEY))).sub).toBe("t");
  });

  test("Authenticator.create hands its clock to the JWT path", async () => {
    using dir = tempDir();
    const clock = new FakeClock();
    const auth = await Authenticator.create(Value.Default(ConfigSchema, { data: { dir: dir.path }, auth: { jwt: { secret: SECRET, clockToleranceSeconds: 0 } } }) as Config, clock);
    const jwt = await token({ exp: S0 + 60 });
    const headers = new Headers({ authorization: `Bearer ${jwt}` });
    expect(await auth.fromHeaders(headers)).toEqual(ANN);
    clock.at = (S0 + 60) * 1000;
    const err = await rejection(Promise.resolve().then(() => auth.fromHeaders(headers)));
    expect([err.status, err.message]).toEqual([401, "invalid bearer token: token expired"]);
    auth.close();
  });
});

// Last: the slowest test of the file.
describe("bound", () => {
  test("at most 10,000 tokens are remembered: the oldest is forgotten first", async () => {
    const verify = await verifier(new FakeClock());
    // Signed by hand (HMAC-SHA256 over header.claims), many times faster than SignJWT.
    const part = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
    const tokens = Array.from({ length: 10_001 }, (_, i) => {
      const signed = `${part({ alg: "HS256" })}.${part({ sub: `u${i}`, roles: ["reader"], exp: S0 + 60 })}`;
      return `${signed}.${new Bun.CryptoHasher("sha256", KEY).update(signed).digest("base64url")}`;
    });
    for (const jwt of tokens) await verify(jwt);
    expect(verify(tokens[0]!)).toBeInstanceOf(Promise); // forgotten to make room for the last
    expect(verify(tokens[1]!)).toEqual({ ...ANN, sub: "u1" });
    expect(verify(tokens[10_000]!)).toEqual({ ...ANN, sub: "u10000" });
  });
});
