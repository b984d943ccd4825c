/** Every gateway error as HTTP: its body, its status, and the headers its code calls for (Retry-After, WWW-Authenticate, Allow). */
import { describe, expect, test } from "bun:test";
import { PlinthError } from "../../../runtime/errors";
import { errorResponse } from "../../../runtime/gateway/errors";

describe("errorResponse", () => {
  test("the body is { error: { code, message, data? } } with the catalog's status; data only when there is some", async () => {
    const withData = errorResponse(new PlinthError("PLT_BAD_REQUEST", "bad", { data: { field: "x" } }), { "x-extra": "1" });
    expect(withData.status).toBe(400);
    expect(withData.headers.get("x-extra")).toBe("1");
    expect(await withData.json()).toEqual({ error: { code: "PLT_BAD_REQUEST", message: "bad", data: { field: "x" } } });
    const without = errorResponse(new PlinthError("PLT_NOT_FOUND", "nothing here"));
    expect(await without.json()).toEqual({ error: { code: "PLT_NOT_FOUND", message: "nothing here" } });
  });

  test("PLT_BULKHEAD_FULL: 503, Retry-After in whole seconds (at least 1, 1 when unsaid), JSON; the same body each time", async () => {
    const full = new PlinthError("PLT_BULKHEAD_FULL", "busy", { data: { service: "s", retryInMs: 1_500 } });
    const first = errorResponse(full, { "x-extra": "1" });
    expect(first.status).toBe(503);
    expect(first.headers.get("retry-after")).toBe("2");
    expect(first.headers.get("x-extra")).toBe("1");
    expect(first.headers.get("content-type")).toBe("application/json;charset=utf-8");
    const body = { error: { code: "PLT_BULKHEAD_FULL", message: "busy", data: { service: "s", retryInMs: 1_500 } } };
    expect(await first.json()).toEqual(body);
    expect(await errorResponse(full).json()).toEqual(body);
    expect(errorResponse(new PlinthError("PLT_BULKHEAD_FULL", "busy", { data: { retryInMs: 10 } })).headers.get("retry-after")).toBe("1");
    expect(errorResponse(new PlinthError("PLT_BULKHEAD_FULL", "busy")).headers.get("retry-after")).toBe("1");
  });

  test("an open breaker or a storage fault says when to retry if it knows; other errors do not", () => {
    for (const code of ["PLT_BREAKER_OPEN", "PLT_STORAGE_FULL", "PLT_STORAGE_UNAVAILABLE"]) {
      expect([code, errorResponse(new PlinthError(code, "later", { data: { retryInMs: 2_001 } })).headers.get("retry-after")]).toEqual([code, "3"]);
      expect([code, errorResponse(new PlinthError(code, "later")).headers.get("retry-after")]).toEqual([code, null]);
    }
    expect(errorResponse(new PlinthError("PLT_INTERNAL", "x", { data: { retryInMs: 5_000 } })).headers.get("retry-after")).toBeNull();
  });

  test("PLT_UNAUTHENTICATED: a Bearer challenge (RFC 6750 §3) naming what was wrong with the credentials sent", () => {
    const challenge = (data?: { reason: string }) => errorResponse(new PlinthError("PLT_UNAUTHENTICATED", 'token "x" expired', data ? { data } : {})).headers.get("www-authenticate");
    expect(challenge()).toBe('Bearer realm="plinth"');
    expect(challenge({ reason: "missing" })).toBe('Bearer realm="plinth"');
    expect(challenge({ reason: "invalid_token" })).toBe(`Bearer realm="plinth", error="invalid_token", error_description="token 'x' expired"`);
    expect(challenge({ reason: "invalid_request" })).toBe(`Bearer realm="plinth", error="invalid_request", error_description="token 'x' expired"`);
    expect(errorResponse(new PlinthError("PLT_FORBIDDEN", "no")).headers.get("www-authenticate")).toBeNull();
  });

  test("PLT_METHOD_NOT_ALLOWED lists the allowed methods in Allow", () => {
    expect(errorResponse(new PlinthError("PLT_METHOD_NOT_ALLOWED", "no", { data: { allow: ["GET", "HEAD"] } })).headers.get("allow")).toBe("GET, HEAD");
    expect(errorResponse(new PlinthError("PLT_METHOD_NOT_ALLOWED", "no")).headers.get("allow")).toBeNull();
    expect(errorResponse(new PlinthError("PLT_BAD_REQUEST", "no", { data: { allow: ["GET"] } })).headers.get("allow")).toBeNull();
  });
});
