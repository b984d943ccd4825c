/** At the gateway's edge: the headers a handler sees and may send, path segments, and answers from the cache (ETag, 304). */
import { describe, expect, test } from "bun:test";
import type { CachedResponse } from "../../../runtime/gateway/cache";
import { cachedResponse, checkHeaders, decode, forwardedHeaders } from "../../../runtime/gateway/http";
import type { RouteMatch } from "../../../runtime/loader/service";
import { PlinthError } from "../../../runtime/errors";

describe("forwardedHeaders", () => {
  test("everything but the credentials: they stay at the gateway", () => {
    const headers = new Headers({ authorization: "Bearer t", "x-api-key": "plk_a_b", accept: "application/json", "x-trace": "1" });
    expect(forwardedHeaders(headers)).toEqual({ accept: "application/json", "x-trace": "1" });
    expect(forwardedHeaders(new Headers({ accept: "text/plain" }))).toEqual({ accept: "text/plain" });
  });
});

describe("decode", () => {
  test("percent-decodes a path segment; a malformed one is PLT_BAD_REQUEST", () => {
    expect(decode("plain")).toBe("plain");
    expect(decode("a%20b%2Fc")).toBe("a b/c");
    let caught: unknown;
    try {
      decode("bad%zz");
    } catch (err) {
      caught = err;
    }
    expect((caught as PlinthError).code).toBe("PLT_BAD_REQUEST");
    expect((caught as PlinthError).message).toBe('malformed percent-encoding in path segment "bad%zz"');
  });
});

describe("checkHeaders", () => {
  const match = { service: { name: "shop" }, route: 0, params: {} } as unknown as RouteMatch;
  const reply = (headers: Record<string, unknown>) => ({ status: 200, headers: headers as Record<string, string>, body: null });

  test("well-formed names and values pass; a CR/LF, a bad name or a value not a string is PLT_HANDLER_ERROR naming the service", () => {
    expect(() => checkHeaders(match, reply({ "x-ok": "value\twith tab", "content-type": "text/plain; charset=é" }))).not.toThrow();
    for (const headers of [{ "x-bad": "a\r\nset-cookie: x" }, { "bad name": "v" }, { "x-num": 1 }, { "": "v" }]) {
      let caught: unknown;
      try {
        checkHeaders(match, reply(headers));
      } catch (err) {
        caught = err;
      }
      expect([headers, (caught as PlinthError | undefined)?.code]).toEqual([headers, "PLT_HANDLER_ERROR"]);
      expect((caught as PlinthError).message).toStartWith("shop: invalid response header");
    }
  });
});

describe("cachedResponse", () => {
  const hit: CachedResponse = {
    status: 200,
    headers: { "content-type": "application/json", etag: '"abc"' },
    body: '{"n":1}',
    etag: '"abc"',
    hitHeaders: new Headers({ "content-type": "application/json", etag: '"abc"', "x-cache": "HIT" }),
  };
  const get = (headers: Record<string, string> = {}) => new Request("http://x/a", { headers });

  test("a plain hit: the stored answer with x-cache HIT", async () => {
    const res = cachedResponse(get(), hit, undefined, "HIT");
    expect([res.status, res.headers.get("x-cache"), res.headers.get("etag"), await res.text()]).toEqual([200, "HIT", '"abc"', '{"n":1}']);
  });

  test("If-None-Match with its ETag (weak, in a list, or *, alone or in a list): 304 without a body", async () => {
    for (const tag of ['"abc"', 'W/"abc"', '"zzz", "abc"', "*", '"zzz", *']) {
      const res = cachedResponse(get({ "if-none-match": tag }), hit, undefined, "HIT");
      expect([tag, res.status, await res.text(), res.headers.get("etag"), res.headers.get("x-cache")]).toEqual([tag, 304, "", '"abc"', "HIT"]);
    }
    const other = cachedResponse(get({ "if-none-match": '"zzz"' }), hit, undefined, "HIT");
    expect(other.status).toBe(200);
    // W/ marks a weak tag only in front: inside a tag it is part of another tag's text.
    const inside = cachedResponse(get({ "if-none-match": '"aW/bc"' }), hit, undefined, "HIT");
    expect(inside.status).toBe(200);
  });

  test("a miss, or rate-limit headers: the stored answer with those headers and its x-cache state", async () => {
    const miss = cachedResponse(get(), hit, undefined, "MISS");
    expect([miss.status, miss.headers.get("x-cache"), await miss.text()]).toEqual([200, "MISS", '{"n":1}']);
    const limited = cachedResponse(get(), hit, { "ratelimit-remaining": "4" }, "HIT");
    expect([limited.headers.get("ratelimit-remaining"), limited.headers.get("x-cache"), limited.headers.get("etag")]).toEqual(["4", "HIT", '"abc"']);
  });
});
