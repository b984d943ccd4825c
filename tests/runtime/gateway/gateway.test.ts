/**
 * The gateway's request handler without a socket: `/api/*` to the API handler, the rest through
 * Elysia (all of it with CORS on), every error as the JSON error body, requests whose target cannot
 * make a URL answered 400, and committed events clearing cached answers.
 */
import { describe, expect, test } from "bun:test";
import { PlinthError } from "../../../runtime/errors";
import { idleTimeoutSeconds } from "../../../runtime/gateway/gateway";
import { harness, json, type FakeUpstream } from "./fake-upstream";

const body = async (res: Response) => ((await res.json()) as { error: { code: string; message: string } }).error;

/** A request as Bun hands it over when its Host cannot make a URL: the bare target as its url. */
function bare(target: string, host: string | null, method = "GET"): Request {
  const headers = new Headers();
  if (host !== null) headers.set("host", host);
  return { url: target, method, headers } as unknown as Request;
}

const build = (u: FakeUpstream) => {
  u.add("s", [
    { method: "GET", path: "/ok", auth: "public", handler: (r) => json({ search: r.search }) },
    { method: "GET", path: "/throws", auth: "public", handler: () => { throw new TypeError("secret at /srv/x.ts:1"); } },
    { method: "GET", path: "/rejects", auth: "public", handler: () => Promise.reject(new RangeError("secret at /srv/y.ts:2")) },
    { method: "GET", path: "/string", auth: "public", handler: () => { throw "plain words"; } },
    { method: "GET", path: "/refused", auth: "public", handler: () => Promise.reject(new PlinthError("PLT_CONFLICT", "taken")) },
    { method: "POST", path: "/echo", auth: "public", handler: (r) => json({ body: r.body ?? null }) },
    { method: "GET", path: "/cached", auth: "public", cache: { ttlMs: 60_000, invalidatedBy: ["events/s/changed", "events/other/+"] }, handler: () => json({ n: ++reads }) },
  ]);
};
let reads = 0;

describe("routing", () => {
  test("/api/* reaches the service with its query string; the rest is Elysia's (404 names method and path, without the query)", async () => {
    using h = await harness({}, build);
    expect(await (await h.fetch("/api/s/ok?a=1")).json()).toEqual({ search: "a=1" });
    const missing = await h.fetch("/nowhere?x=1");
    expect(missing.status).toBe(404);
    expect(await body(missing)).toEqual({ code: "PLT_NOT_FOUND", message: "no route GET /nowhere" });
    const api = await h.fetch("/apix");
    expect(api.status).toBe(404);
  });

  test("a Host of one to three characters: its paths are found as with any other", async () => {
    using h = await harness({}, build);
    for (const host of ["a", "ab", "abc"]) {
      const res = await h.app.fetch(new Request(`http://${host}/health`));
      expect([host, res.status, ((await res.json()) as { status: string }).status]).toEqual([host, 200, "ok"]);
    }
  });

  test("a fault that is not a PlinthError: 500 PLT_INTERNAL with the code only, logged once with the request", async () => {
    using h = await harness({}, build);
    for (const path of ["/api/s/throws", "/api/s/rejects"]) {
      const res = await h.fetch(`${path}?q=1`);
      expect(res.status).toBe(500);
      expect(await body(res)).toEqual({ code: "PLT_INTERNAL", message: "internal error" });
    }
    expect(h.logs).toHaveLength(2);
    const [first, second] = h.logs.map((l) => JSON.parse(l) as { msg: string; request: string; error: string });
    expect([first!.msg, first!.request]).toEqual(["gateway error", "GET /api/s/throws"]);
    expect(first!.error).toContain("TypeError: secret at /srv/x.ts:1");
    expect(second!.request).toBe("GET /api/s/rejects");
    expect((await h.fetch("/api/s/string")).status).toBe(500);
    expect(JSON.parse(h.logs[2]!).error).toBe("plain words");
  });

  test("a PlinthError from the service is its own status and body, and nothing is logged", async () => {
    using h = await harness({}, build);
    const res = await h.fetch("/api/s/refused");
    expect([res.status, await body(res)]).toEqual([409, { code: "PLT_CONFLICT", message: "taken" }]);
    const sync = await h.fetch("/api/none/x");
    expect([sync.status, (await body(sync)).code]).toEqual([404, "PLT_SERVICE_NOT_FOUND"]);
    expect(h.logs).toHaveLength(0);
  });

  test("the API handler's synchronous answers (a cache hit) are answered without a promise", async () => {
    using h = await harness({}, build);
    await h.fetch("/api/s/cached");
    const hit = h.app.fetch(new Request("http://plinth.test/api/s/cached"));
    expect(hit).toBeInstanceOf(Response);
    expect((hit as Response).headers.get("x-cache")).toBe("HIT");
    const refused = h.app.fetch(new Request("http://plinth.test/api/none"));
    expect(refused).toBeInstanceOf(Response);
  });
});

describe("requests whose target cannot make a URL: 400 PLT_BAD_REQUEST", () => {
  test("an empty Host, a Host that is not a host name (quoted, escaped, cut at 100 characters), CONNECT", async () => {
    using h = await harness({}, build);
    const answer = async (r: Request) => {
      const res = await h.app.fetch(r);
      expect(res.status).toBe(400);
      const error = await body(res);
      expect(error.code).toBe("PLT_BAD_REQUEST");
      return error.message;
    };
    expect(await answer(bare("/api/s/ok", null))).toBe("missing or empty Host header");
    expect(await answer(bare("/health", ""))).toBe("missing or empty Host header");
    expect(await answer(bare("/health", "a/b"))).toBe('invalid Host header "a/b": it must be a host name or address, with an optional port');
    expect(await answer(bare("/health", "h\u00e9\u0001"))).toBe('invalid Host header "h\\u00e9\\u0001": it must be a host name or address, with an optional port');
    expect(await answer(bare("/health", "x".repeat(101)))).toBe(`invalid Host header "${"x".repeat(100)}…": it must be a host name or address, with an optional port`.replace("…", "\\u2026"));
    expect(await answer(bare("/health", "x".repeat(100)))).toBe(`invalid Host header "${"x".repeat(100)}": it must be a host name or address, with an optional port`);
    expect(await answer(bare("example.com:443", "example.com:443", "CONNECT"))).toBe("CONNECT is not served: this is not a proxy");
    expect(await answer(bare("http://plinth.test/health", "plinth.test", "CONNECT"))).toBe("CONNECT is not served: this is not a proxy");
  });

  test("a bare target is never served, not even one that looks like a URL without its scheme (//host/api/...)", async () => {
    using h = await harness({}, build);
    const res = await h.app.fetch(bare("//plinth.test/api/s/ok", "a b"));
    expect([res.status, (await body(res)).code]).toEqual([400, "PLT_BAD_REQUEST"]);
    expect(h.upstream.handled).toHaveLength(0);
  });

  test("an absolute URL that does not parse, on a path Elysia serves", async () => {
    using h = await harness({}, build);
    const res = await h.app.fetch(bare("http://[x/health", "[x"));
    expect([res.status, (await body(res)).message]).toEqual([400, 'invalid Host header "[x": it must be a host name or address, with an optional port']);
  });
});

describe("with CORS on: every request through Elysia", () => {
  const cors = () => ({ gateway: { cors: { origins: ["http://app.test"], credentials: true, maxAgeSeconds: 60 } } });

  test("API answers carry the CORS headers; a preflight is answered with the allowed headers and max age", async () => {
    using h = await harness(cors(), build);
    const res = await h.fetch("/api/s/ok?z=9", { headers: { origin: "http://app.test" } });
    expect(await res.json()).toEqual({ search: "z=9" });
    expect(res.headers.get("access-control-allow-origin")).toBe("http://app.test");
    expect(res.headers.get("access-control-allow-credentials")).toBe("true");
    expect(res.headers.get("access-control-expose-headers")).toBe("etag, retry-after, ratelimit-limit, ratelimit-remaining, ratelimit-reset, www-authenticate");
    const pre = await h.fetch("/api/s/ok", { method: "OPTIONS", headers: { origin: "http://app.test", "access-control-request-method": "GET", "access-control-request-headers": "x-api-key" } });
    expect(pre.status).toBeLessThan(300);
    expect(pre.headers.get("access-control-allow-headers")).toBe("authorization, content-type, x-api-key, if-none-match");
    expect(pre.headers.get("access-control-max-age")).toBe("60");
  });

  test("errors are the JSON error body there too, and an unparsable target is 400", async () => {
    using h = await harness(cors(), build);
    const refused = await h.fetch("/api/s/refused", { headers: { origin: "http://app.test" } });
    expect([refused.status, (await body(refused)).code]).toEqual([409, "PLT_CONFLICT"]);
    const internal = await h.fetch("/api/s/throws");
    expect([internal.status, await body(internal)]).toEqual([500, { code: "PLT_INTERNAL", message: "internal error" }]);
    expect(JSON.parse(h.logs[0]!).request).toBe("GET /api/s/throws");
    const missing = await h.fetch("/nowhere");
    expect(await body(missing)).toEqual({ code: "PLT_NOT_FOUND", message: "no route GET /nowhere" });
    expect((await h.app.fetch(bare("/api/s/ok", "a b"))).status).toBe(400);
    expect((await h.app.fetch(bare("http://[x/api/s/ok", "[x"))).status).toBe(400);
  });

  test("request bodies are read by the gateway, not by Elysia: JSON reaches the service, malformed JSON is the gateway's own 400", async () => {
    using h = await harness(cors(), build);
    const post = (text: string) => h.fetch("/api/s/echo", { method: "POST", body: text, headers: { origin: "http://app.test", "content-type": "application/json" } });
    const ok = await post('{"a":[1]}');
    expect([ok.status, await ok.json()]).toEqual([200, { body: { a: [1] } }]);
    const bad = await post("{oops");
    expect(bad.status).toBe(400);
    const error = await body(bad);
    expect(error.code).toBe("PLT_BAD_JSON");
    expect(error.message).toStartWith("malformed JSON body: ");
    expect(h.upstream.handled).toHaveLength(1);
  });

  test("any origin ('*'): every origin allowed, without credentials", async () => {
    using h = await harness({ gateway: { cors: { origins: ["*"], credentials: true } } }, build);
    const res = await h.fetch("/api/s/ok", { headers: { origin: "http://else.test" } });
    expect(res.headers.get("access-control-allow-origin")).toBe("http://else.test");
    expect(res.headers.get("access-control-allow-credentials")).toBeNull();
  });

  test("without CORS, no CORS headers", async () => {
    using h = await harness({}, build);
    const res = await h.fetch("/api/s/ok", { headers: { origin: "http://app.test" } });
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
    expect((await h.fetch("/health", { headers: { origin: "http://app.test" } })).headers.get("access-control-allow-origin")).toBeNull();
  });
});

describe("committed events and the cache", () => {
  test("an event of a service on a route's filter clears its answers, whichever filter matches; others do not", async () => {
    using h = await harness({}, build);
    const n = async () => ((await (await h.fetch("/api/s/cached")).json()) as { n: number }).n;
    const first = await n();
    h.upstream.commit("s", "other");
    h.upstream.commit("t", "changed");
    expect(await n()).toBe(first);
    h.upstream.commit("s", "unrelated", "changed");
    const second = await n();
    expect(second).toBe(first + 1);
    h.upstream.commit("other", "anything");
    expect(await n()).toBe(second + 1);
  });
});

describe("/openapi.json and /docs", () => {
  test("served when gateway.openapi is on; 404 naming the path when it is off", async () => {
    using on = await harness({}, build);
    const doc = (await (await on.fetch("/openapi.json")).json()) as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths)).toContain("/api/s/ok");
    const docs = await on.fetch("/docs");
    expect(docs.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(await docs.text()).toContain("/openapi.json");
    using off = await harness({ gateway: { openapi: false } }, build);
    for (const path of ["/openapi.json", "/docs"]) {
      const res = await off.fetch(path);
      expect([res.status, await body(res)]).toEqual([404, { code: "PLT_NOT_FOUND", message: `no route GET ${path}` }]);
    }
  });
});

describe("idleTimeoutSeconds", () => {
  test("past the request timeout by 5 s, at least 10 s; 0 (off per request) beyond Bun's 255 s", () => {
    expect(idleTimeoutSeconds(30_000)).toBe(35);
    expect(idleTimeoutSeconds(30_001)).toBe(36);
    expect(idleTimeoutSeconds(1_000)).toBe(10);
    expect(idleTimeoutSeconds(5_000)).toBe(10);
    expect(idleTimeoutSeconds(6_000)).toBe(11);
    expect(idleTimeoutSeconds(250_000)).toBe(255);
    expect(idleTimeoutSeconds(250_001)).toBe(0);
  });
});
