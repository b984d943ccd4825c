/** Credentials as HTTP requests carry them (Authenticator.fromHeaders), and route policies (authorize). */
import { describe, expect, test } from "bun:test";
import { Value } from "@sinclair/typebox/value";
import { ConfigSchema, type Config } from "../../../config/schema";
import { Authenticator } from "../../../runtime/auth/authenticator";
import { authorize } from "../../../runtime/auth/policy";
import { PlinthError } from "../../../runtime/errors";
import type { Identity } from "../../../runtime/protocol";
import { rejection } from "../../helpers/errors";
import { createKey } from "../../helpers/keys";
import { tempDir } from "../../helpers/tmp";

/** The outcome of `fromHeaders`, whether it answers at once, later, or throws. */
const from = (auth: Authenticator, headers: Record<string, string>) => Promise.resolve().then(() => auth.fromHeaders(new Headers(headers)));

async function authenticator(dataDir: string, jwt: Partial<Config["auth"]["jwt"]> = {}): Promise<Authenticator> {
  return Authenticator.create(Value.Default(ConfigSchema, { data: { dir: dataDir }, auth: { jwt } }) as Config);
}

describe("Authenticator.fromHeaders", () => {
  test("an API key in X-API-Key or as a bearer token, spaces around it ignored; no credentials: null", async () => {
    using dir = tempDir();
    const key = createKey(dir.path, ["device"], "meter-1");
    const auth = await authenticator(dir.path);
    const meter = { sub: "meter-1", roles: ["device"], via: "key" } as Identity;
    expect(await from(auth, { "x-api-key": `  ${key} ` })).toEqual(meter);
    expect(await from(auth, { authorization: `bearer   ${key}` })).toEqual(meter);
    expect(await from(auth, {})).toBeNull();
    auth.close();
  });

  test("an Authorization header that is not \"Bearer <credential>\": PLT_UNAUTHENTICATED, invalid_request", async () => {
    using dir = tempDir();
    const auth = await authenticator(dir.path);
    for (const authorization of ["Bearer", "Basic dXNlcjpwdw==", "Token abc"]) {
      const err = await rejection(from(auth, { authorization }));
      expect([authorization, err.code, err.data]).toEqual([authorization, "PLT_UNAUTHENTICATED", { reason: "invalid_request" }]);
    }
    auth.close();
  });

  test("a token when no JWT key is configured, or an unknown key: PLT_UNAUTHENTICATED, invalid_token", async () => {
    using dir = tempDir();
    const auth = await authenticator(dir.path);
    for (const credential of ["eyJhbGciOiJIUzI1NiJ9.e30.x", "plk_unknown_key"]) {
      const err = await rejection(from(auth, { authorization: `Bearer ${credential}` }));
      expect([credential, err.code, err.status, err.data]).toEqual([credential, "PLT_UNAUTHENTICATED", 401, { reason: "invalid_token" }]);
    }
    auth.close();
  });

  test("a bearer token with no JWT key configured: the message says tokens are not accepted and why", async () => {
    using dir = tempDir();
    const auth = await authenticator(dir.path);
    const err = await rejection(from(auth, { authorization: "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x" }));
    expect(err.message).toBe("bearer tokens are not accepted: no auth.jwt key is configured");
    expect((await rejection(from(auth, { "x-api-key": "plk_unknown_key" }))).message).toBe("invalid API key (unknown or revoked)");
    auth.close();
  });
});

describe("authorize", () => {
  const ann = { sub: "ann", roles: ["reader", "writer"], via: "key" } as Identity;

  test("public lets anyone through; otherwise no identity is PLT_UNAUTHENTICATED (401, reason missing)", () => {
    expect(() => authorize("public", null)).not.toThrow();
    let caught: unknown;
    try {
      authorize("authenticated", null);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(PlinthError);
    expect([(caught as PlinthError).code, (caught as PlinthError).status, (caught as PlinthError).data]).toEqual(["PLT_UNAUTHENTICATED", 401, { reason: "missing" }]);
    expect((caught as PlinthError).message).toBe("authentication required: send Authorization: Bearer <token or API key>");
    expect(() => authorize("authenticated", ann)).not.toThrow();
  });

  test("a role list: any one of the caller's roles is enough; none of them is PLT_FORBIDDEN naming the roles", () => {
    expect(() => authorize(["writer"], ann)).not.toThrow();
    expect(() => authorize(["admin", "reader"], ann)).not.toThrow();
    expect(() => authorize(["admin", "ops"], ann)).toThrow("requires one of the roles admin, ops");
    try {
      authorize(["admin"], ann);
    } catch (err) {
      expect([(err as PlinthError).code, (err as PlinthError).status, (err as PlinthError).data]).toEqual(["PLT_FORBIDDEN", 403, { roles: ["admin"] }]);
    }
  });
});
