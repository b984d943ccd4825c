/**
 * `/api/<service>/<path>` through the gateway's app with a fake upstream (no socket, no worker):
 * route matching, who may call, rate limits, the response cache (and a GET that overlaps a
 * committing POST), the breaker's refusal and fallbacks, and how the service's answer becomes HTTP.
 */
import { describe, expect, test } from "bun:test";
import { SignJWT } from "jose";
import { PlinthError } from "../../../runtime/errors";
import { createKey } from "../../helpers/keys";
import { deferred, harness, json, SECRET, type FakeUpstream } from "./fake-upstream";

const jwt = (sub: string, roles: string[] = []) =>
  new SignJWT({ roles }).setProtectedHeader({ alg: "HS256" }).setSubject(sub).setExpirationTime("1h").sign(new TextEncoder().encode(SECRET));

const body = async (res: Response) => res.json() as Promise<{ error: { code: string; message: string; data?: unknown } }>;

describe("matching", () => {
  const build = (u: FakeUpstream) => {
    u.add("shop", [
      { method: "GET", path: "/", auth: "public" },
      { method: "GET", path: "/items/:id", auth: "public", handler: (r) => json({ id: r.params.id, search: r.search }) },
      { method: "POST", path: "/items/:id", auth: "public" },
      { method: "DELETE", path: "/orders", auth: "public" },
    ]);
  };

  test("the service's route gets the decoded path parameters and the query string", async () => {
    using h = await harness({}, build);
    const res = await h.fetch("/api/shop/items/a%20b?x=1&y=2");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ id: "a b", search: "x=1&y=2" });
    expect((await h.fetch("/api/shop/items/c")).status).toBe(200);
    expect(h.upstream.handled.at(-1)!.search).toBe("");
  });

  test("the service's name is percent-decoded; a malformed segment is 400 PLT_BAD_REQUEST", async () => {
    using h = await harness({}, build);
    expect((await h.fetch("/api/sh%6Fp/items/1")).status).toBe(200);
    const bad = await h.fetch("/api/shop/items/%zz");
    expect(bad.status).toBe(400);
    expect((await body(bad)).error.code).toBe("PLT_BAD_REQUEST");
    expect((await h.fetch("/api/%zz/items")).status).toBe(400);
  });

  test("/api/<service> alone is the service's root route", async () => {
    using h = await harness({}, build);
    expect((await h.fetch("/api/shop")).status).toBe(200);
    expect(h.upstream.handled.at(-1)!.service.name).toBe("shop");
  });

  test("no such service: 404 PLT_SERVICE_NOT_FOUND; no such route: 404 PLT_NOT_FOUND", async () => {
    using h = await harness({}, build);
    const none = await h.fetch("/api/nope/x");
    expect([none.status, (await body(none)).error.code]).toEqual([404, "PLT_SERVICE_NOT_FOUND"]);
    const noRoute = await h.fetch("/api/shop/elsewhere");
    expect([noRoute.status, (await body(noRoute)).error.code]).toEqual([404, "PLT_NOT_FOUND"]);
  });

  test("another method of the path: 405 with Allow (HEAD beside GET), naming the path as asked", async () => {
    using h = await harness({}, build);
    const res = await h.fetch("/api/shop/items/1", { method: "PUT" });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("GET, HEAD, POST");
    const err = (await body(res)).error;
    expect(err).toEqual({ code: "PLT_METHOD_NOT_ALLOWED", message: "PUT is not allowed on /api/shop/items/1: GET, HEAD, POST", data: { allow: ["GET", "HEAD", "POST"] } });
    const root = await h.fetch("/api/shop", { method: "POST" });
    expect((await body(root)).error.message).toBe("POST is not allowed on /api/shop: GET, HEAD");
    const onlyDelete = await h.fetch("/api/shop/orders");
    expect(onlyDelete.headers.get("allow")).toBe("DELETE");
  });

  test("a path no method serves stays 404; a service without a manifest too", async () => {
    using h = await harness({}, (u) => {
      build(u);
      u.add("bare", [], { manifest: false });
    });
    expect((await h.fetch("/api/shop/nothing", { method: "PUT" })).status).toBe(404);
    expect((await h.fetch("/api/bare/x", { method: "PUT" })).status).toBe(404);
  });

  test("HEAD is served by the GET route, asked as GET", async () => {
    using h = await harness({}, build);
    const res = await h.fetch("/api/shop/items/7", { method: "HEAD" });
    expect(res.status).toBe(200);
    expect(h.upstream.handled.at(-1)!.params).toEqual({ id: "7" });
  });
});

describe("who may call", () => {
  const build = (u: FakeUpstream) => {
    u.add("s", [
      { method: "GET", path: "/open", auth: "public", handler: (r) => json({ identity: r.identity ?? null }) },
      { method: "GET", path: "/mine", handler: (r) => json({ identity: r.identity ?? null, headers: r.headers }) },
      { method: "GET", path: "/admin", auth: ["admin"] },
    ]);
  };

  test("the default policy (authenticated): 401 without credentials, the caller's identity with them; credentials are not forwarded", async () => {
    using h = await harness({}, build);
    const anonymous = await h.fetch("/api/s/mine");
    expect([anonymous.status, (await body(anonymous)).error.code]).toEqual([401, "PLT_UNAUTHENTICATED"]);
    const key = createKey(h.dir.path, ["user"], "alice");
    const res = await h.fetch("/api/s/mine", { headers: { "x-api-key": key, accept: "text/plain" } });
    expect(res.status).toBe(200);
    const seen = (await res.json()) as { identity: unknown; headers: Record<string, string> };
    expect(seen.identity).toEqual({ sub: "alice", roles: ["user"], via: "key" });
    expect(seen.headers["x-api-key"]).toBeUndefined();
    expect(seen.headers.accept).toBe("text/plain");
  });

  test("a JWT (verified asynchronously) proves the caller too; a role list refuses others with 403", async () => {
    using h = await harness({}, build);
    const res = await h.fetch("/api/s/mine", { headers: { authorization: `Bearer ${await jwt("bob", ["user"])}` } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { identity: unknown }).identity).toEqual({ sub: "bob", roles: ["user"], via: "jwt" });
    const forbidden = await h.fetch("/api/s/admin", { headers: { authorization: `Bearer ${await jwt("bob", ["user"])}` } });
    expect([forbidden.status, (await body(forbidden)).error.code]).toEqual([403, "PLT_FORBIDDEN"]);
    expect((await h.fetch("/api/s/admin", { headers: { authorization: `Bearer ${await jwt("root", ["admin"])}` } })).status).toBe(200);
  });

  test("invalid credentials: 401 on a protected route, ignored on a public one (sync and async failures)", async () => {
    using h = await harness({}, build);
    expect((await h.fetch("/api/s/mine", { headers: { "x-api-key": "plk_no_such" } })).status).toBe(401);
    expect((await h.fetch("/api/s/mine", { headers: { authorization: "Bearer not.a.jwt" } })).status).toBe(401);
    for (const headers of <Array<Record<string, string>>>[{ "x-api-key": "plk_no_such" }, { authorization: "Bearer not.a.jwt" }, { authorization: "Basic x" }]) {
      const res = await h.fetch("/api/s/open", { headers });
      expect([headers, res.status]).toEqual([headers, 200]);
      expect(await res.json()).toEqual({ identity: null });
    }
  });

  test("a public default policy lets anonymous callers in", async () => {
    using h = await harness({ auth: { defaultPolicy: "public" } }, build);
    expect((await h.fetch("/api/s/mine")).status).toBe(200);
  });
});

describe("rate limits", () => {
  const build = (u: FakeUpstream) => {
    u.add("s", [
      { method: "GET", path: "/limited", auth: "public", rateLimit: { limit: 2, windowMs: 1_000 } },
      { method: "GET", path: "/free", auth: "public" },
      { method: "GET", path: "/fails", auth: "public", rateLimit: { limit: 5, windowMs: 1_000 }, handler: () => Promise.reject(new PlinthError("PLT_VALIDATION", "no")) },
      { method: "GET", path: "/mine", rateLimit: { limit: 1, windowMs: 1_000 } },
      { method: "GET", path: "/crashes", auth: "public", rateLimit: { limit: 5, windowMs: 1_000 }, handler: () => Promise.reject(new TypeError("boom")) },
    ]);
  };

  test("a route's limit per client address: 429 PLT_RATE_LIMITED with RateLimit-* and Retry-After; another address has its own bucket", async () => {
    using h = await harness({}, build);
    const first = await h.fetch("/api/s/limited");
    expect(first.status).toBe(200);
    expect([first.headers.get("ratelimit-limit"), first.headers.get("ratelimit-remaining")]).toEqual(["2", "1"]);
    expect((await h.fetch("/api/s/limited")).headers.get("ratelimit-remaining")).toBe("0");
    const refused = await h.fetch("/api/s/limited");
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("1");
    expect(refused.headers.get("ratelimit-limit")).toBe("2");
    expect((await body(refused)).error).toEqual({ code: "PLT_RATE_LIMITED", message: "rate limit of 2 requests per 1000 ms reached for GET /api/s/limited" });
    expect(h.upstream.handled).toHaveLength(2);
    expect((await h.fetch("/api/s/limited", { headers: { "x-test-ip": "10.9.9.9" } })).status).toBe(200);
    h.clock.now += 1_000;
    expect((await h.fetch("/api/s/limited")).status).toBe(200);
  });

  test("no limit: no RateLimit headers; the node's default and a per-route override apply, the override first", async () => {
    using h = await harness({}, build);
    expect((await h.fetch("/api/s/free")).headers.get("ratelimit-limit")).toBeNull();
    using d = await harness({ gateway: { rateLimit: { limit: 3, windowMs: 1_000 }, rateLimits: { "GET /api/s/limited": { limit: 7, windowMs: 1_000 } } } }, build);
    expect((await d.fetch("/api/s/free")).headers.get("ratelimit-limit")).toBe("3");
    expect((await d.fetch("/api/s/limited")).headers.get("ratelimit-limit")).toBe("7");
  });

  test("a known caller has a bucket of their own, whatever the address", async () => {
    using h = await harness({}, build);
    const alice = createKey(h.dir.path, ["user"], "alice");
    const bob = createKey(h.dir.path, ["user"], "bob");
    expect((await h.fetch("/api/s/mine", { headers: { "x-api-key": alice } })).status).toBe(200);
    expect((await h.fetch("/api/s/mine", { headers: { "x-api-key": alice, "x-test-ip": "1.1.1.1" } })).status).toBe(429);
    expect((await h.fetch("/api/s/mine", { headers: { "x-api-key": bob } })).status).toBe(200);
  });

  test("the errors of a limited route carry its RateLimit headers", async () => {
    using h = await harness({}, build);
    const res = await h.fetch("/api/s/fails");
    expect(res.status).toBe(400);
    expect(res.headers.get("ratelimit-remaining")).toBe("4");
    expect((await body(res)).error.code).toBe("PLT_VALIDATION");
    const crash = await h.fetch("/api/s/crashes");
    expect([crash.status, (await body(crash)).error]).toEqual([500, { code: "PLT_INTERNAL", message: "internal error" }]);
  });
});

describe("breaker and fallbacks", () => {
  const build = (u: FakeUpstream) => {
    u.add("s", [
      { method: "GET", path: "/a", auth: "public", handler: () => Promise.reject(new PlinthError("PLT_TIMEOUT", "slow")) },
      { method: "GET", path: "/bad", auth: "public", handler: () => Promise.reject(new PlinthError("PLT_VALIDATION", "invalid")) },
      { method: "POST", path: "/upload", auth: "public" },
    ]);
  };

  test("a service that cannot take the request refuses it before the body is read", async () => {
    using h = await harness({}, build);
    h.upstream.refusals.set("s", new PlinthError("PLT_BREAKER_OPEN", "open", { data: { retryInMs: 3_000 } }));
    let pulled = false;
    const stream = new ReadableStream({ pull: (c) => ((pulled = true), c.enqueue(new TextEncoder().encode("{}")), c.close()) }, { highWaterMark: 0 });
    const res = await h.fetch("/api/s/upload", { method: "POST", body: stream, headers: { "content-type": "application/json" } });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("3");
    expect((await body(res)).error.code).toBe("PLT_BREAKER_OPEN");
    expect(pulled).toBe(false);
    expect(h.upstream.handled).toHaveLength(0);
  });

  test("a route with a fallback answers with it on a 5xx failure (marked), not on a 4xx; the breaker's refusal goes to it too", async () => {
    using h = await harness(
      { gateway: { fallbacks: { "GET /api/s/a": { status: 200, body: { items: [] }, headers: { "x-from": "fallback" } }, "GET /api/s/bad": { status: 200, body: 1 } } } },
      build,
    );
    const res = await h.fetch("/api/s/a");
    expect(res.status).toBe(200);
    expect(res.headers.get("x-plinth-fallback")).toBe("PLT_TIMEOUT");
    expect(res.headers.get("x-from")).toBe("fallback");
    expect(res.headers.get("content-type")).toBe("application/json;charset=utf-8");
    expect(await res.json()).toEqual({ items: [] });
    expect((await h.fetch("/api/s/bad")).status).toBe(400);
    h.upstream.refusals.set("s", new PlinthError("PLT_BREAKER_OPEN", "open"));
    expect(h.upstream.handled).toHaveLength(2);
    // With a fallback the refusal is not answered early: the request goes on (the loader's breaker refuses it there).
    expect((await h.fetch("/api/s/a")).headers.get("x-plinth-fallback")).toBe("PLT_TIMEOUT");
  });
});

describe("bodies and answers", () => {
  test("the body is read and decoded for the service; a body schema needs a JSON content type", async () => {
    using h = await harness({ auth: { defaultPolicy: "public" } }, (u) => {
      u.add("s", [
        { method: "POST", path: "/echo", handler: (r) => json({ body: r.body ?? null }) },
        { method: "POST", path: "/typed", schemas: { body: { type: "object" } } },
      ]);
    });
    const res = await h.fetch("/api/s/echo", { method: "POST", body: '{"a":[1]}', headers: { "content-type": "application/json" } });
    expect(await res.json()).toEqual({ body: { a: [1] } });
    const untyped = await h.fetch("/api/s/echo", { method: "POST", body: "x" });
    expect([untyped.status, (await body(untyped)).error.code]).toEqual([400, "PLT_BAD_JSON"]);
    const typed = await h.fetch("/api/s/typed", { method: "POST", body: "{}", headers: { "content-type": "application/json" } });
    expect(typed.status).toBe(200);
    const noType = await h.fetch("/api/s/typed", { method: "POST", body: new Blob(["{}"]) });
    expect([noType.status, (await body(noType)).error.code]).toEqual([415, "PLT_UNSUPPORTED_MEDIA_TYPE"]);
    expect(h.upstream.handled).toHaveLength(2);
  });

  test("the service's status, headers and body; 204 and 304 without a body", async () => {
    using h = await harness({ auth: { defaultPolicy: "public" } }, (u) => {
      u.add("s", [
        { method: "GET", path: "/made", handler: () => json({ id: 1 }, 201, { "x-own": "yes" }) },
        { method: "GET", path: "/none", handler: () => ({ status: 204, headers: {}, body: "ignored" }) },
        { method: "GET", path: "/same", handler: () => ({ status: 304, headers: {}, body: "ignored" }) },
      ]);
    });
    const made = await h.fetch("/api/s/made");
    expect([made.status, made.headers.get("x-own"), await made.json()]).toEqual([201, "yes", { id: 1 }]);
    const none = await h.fetch("/api/s/none");
    expect([none.status, await none.text()]).toEqual([204, ""]);
    const same = await h.fetch("/api/s/same");
    expect([same.status, await same.text()]).toEqual([304, ""]);
  });

  test("an answer Bun cannot send: a malformed header is named, else the status is invalid (PLT_HANDLER_ERROR)", async () => {
    using h = await harness({ auth: { defaultPolicy: "public" } }, (u) => {
      u.add("s", [
        { method: "GET", path: "/header", handler: () => json(1, 200, { "x-bad": "a\r\nset-cookie: x" }) },
        { method: "GET", path: "/status", handler: () => json(1, 99) },
      ]);
    });
    const header = await h.fetch("/api/s/header");
    expect([header.status, (await body(header)).error]).toEqual([500, { code: "PLT_HANDLER_ERROR", message: 's: invalid response header "x-bad"' }]);
    const status = await h.fetch("/api/s/status");
    expect((await body(status)).error).toEqual({ code: "PLT_HANDLER_ERROR", message: "s: invalid response" });
  });

  test("a replacement that takes over while the body is read gets the request, under its own route's policy", async () => {
    using h = await harness({}, (u) => {
      u.add("s", [{ method: "POST", path: "/p", auth: "public" }], { version: "1" });
    });
    const key = createKey(h.dir.path, ["user"], "alice");
    const chunk = deferred<void>();
    const stream = new ReadableStream<Uint8Array>({
      async pull(c) {
        await chunk.promise;
        c.enqueue(new TextEncoder().encode("{}"));
        c.close();
      },
    }, { highWaterMark: 0 });
    const answer = h.fetch("/api/s/p", { method: "POST", body: stream, headers: { "content-type": "application/json" } });
    const replacement = h.upstream.add("s", [{ method: "POST", path: "/p", auth: ["admin"] }], { version: "2" });
    chunk.resolve();
    const res = await answer;
    expect([res.status, (await body(res)).error.code]).toEqual([401, "PLT_UNAUTHENTICATED"]);
    expect(h.upstream.handled).toHaveLength(0);
    const allowed = await h.fetch("/api/s/p", { method: "POST", body: "{}", headers: { "content-type": "application/json", "x-api-key": key } });
    expect(allowed.status).toBe(403);
    h.upstream.add("s", [{ method: "POST", path: "/p", auth: "public" }], { version: "1" });
    const again = deferred<void>();
    const second = new ReadableStream<Uint8Array>({
      async pull(c) {
        await again.promise;
        c.enqueue(new TextEncoder().encode("{}"));
        c.close();
      },
    }, { highWaterMark: 0 });
    const served = h.fetch("/api/s/p", { method: "POST", body: second, headers: { "content-type": "application/json" } });
    const next = h.upstream.add("s", [{ method: "POST", path: "/p", auth: "public" }], { version: "3" });
    again.resolve();
    expect((await served).status).toBe(200);
    expect(h.upstream.handled.at(-1)!.service).toBe(next);
    expect(replacement).not.toBe(next);
  });
});

describe("the response cache", () => {
  const CACHED = { ttlMs: 5_500, invalidatedBy: ["events/shop/#"] };
  let reads = 0;
  const build = (u: FakeUpstream) => {
    u.add("shop", [
      { method: "GET", path: "/items", auth: "public", cache: CACHED, handler: () => json({ read: ++reads }) },
      { method: "GET", path: "/mine", cache: CACHED, handler: (r) => json({ read: ++reads, identity: r.identity ?? null }) },
      { method: "GET", path: "/plain", auth: "public", handler: () => json({ read: ++reads }) },
      { method: "GET", path: "/cookie", auth: "public", cache: CACHED, handler: () => json({ read: ++reads }, 200, { "set-cookie": "s=1" }) },
      { method: "GET", path: "/vary", auth: "public", cache: CACHED, handler: (r) => json({ read: ++reads, lang: r.headers["accept-language"] ?? null }, 200, { vary: "Accept-Language" }) },
      { method: "GET", path: "/star", auth: "public", cache: CACHED, handler: () => json({ read: ++reads }, 200, { vary: "*" }) },
      { method: "GET", path: "/missing", auth: "public", cache: CACHED, handler: () => json({ read: ++reads }, 404) },
      { method: "GET", path: "/null", auth: "public", cache: CACHED, handler: () => ({ status: 200, headers: {}, body: null }) },
      { method: "GET", path: "/bad-header", auth: "public", cache: CACHED, handler: () => json(1, 200, { "x-bad": "a\nb" }) },
      { method: "GET", path: "/toggle", auth: "public", cache: CACHED, handler: (r) => json({ read: ++reads, lang: r.headers["accept-language"] ?? null }, 200, varyNext ? { Vary: "Accept-Language, ," } : {}) },
      { method: "GET", path: "/fallback", auth: "public", cache: CACHED, handler: () => (failNext ? Promise.reject(new PlinthError("PLT_HANDLER_ERROR", "down")) : json({ read: ++reads })) },
      { method: "POST", path: "/items", auth: "public", handler: () => json({ ok: true }, 201) },
    ]);
  };
  let varyNext = true;
  let failNext = true;
  const read = async (res: Response) => ((await res.json()) as { read: number }).read;

  test("a cached route's answer is stored (MISS) and served again (HIT) with its ETag and Cache-Control, until its TTL passes", async () => {
    using h = await harness({}, build);
    const miss = await h.fetch("/api/shop/items");
    expect(miss.headers.get("x-cache")).toBe("MISS");
    expect(miss.headers.get("cache-control")).toBe("public, max-age=5");
    expect(miss.headers.get("vary")).toBeNull();
    expect(miss.headers.get("content-type")).toBe("application/json");
    const etag = miss.headers.get("etag");
    const first = await read(miss);
    const hit = await h.fetch("/api/shop/items");
    expect([hit.headers.get("x-cache"), hit.headers.get("etag"), await read(hit)]).toEqual(["HIT", etag, first]);
    const conditional = await h.fetch("/api/shop/items", { headers: { "if-none-match": etag! } });
    expect(conditional.status).toBe(304);
    expect(await read(await h.fetch("/api/shop/items?page=2"))).toBe(first + 1);
    h.clock.now += 5_499;
    expect(await read(await h.fetch("/api/shop/items"))).toBe(first);
    h.clock.now += 1;
    expect(await read(await h.fetch("/api/shop/items"))).toBe(first + 2);
  });

  test("routes without `cache`, answers other than 200 and `Vary: *` are not stored", async () => {
    using h = await harness({}, build);
    for (const path of ["/plain", "/missing", "/star"]) {
      const a = await h.fetch(`/api/shop${path}`);
      const b = await h.fetch(`/api/shop${path}`);
      expect([path, a.headers.get("x-cache"), b.headers.get("x-cache"), (await read(b)) - (await read(a))]).toEqual([path, null, null, 1]);
    }
  });

  test("a stored answer never replays the Set-Cookie sent to its first caller", async () => {
    using h = await harness({}, build);
    const first = await h.fetch("/api/shop/cookie");
    expect(first.headers.get("set-cookie")).toBeNull();
    expect((await h.fetch("/api/shop/cookie")).headers.get("set-cookie")).toBeNull();
  });

  test("an answer naming Vary is kept per value of those request headers", async () => {
    using h = await harness({}, build);
    const fr = { headers: { "accept-language": "fr" } };
    const de = { headers: { "accept-language": "de" } };
    const a = await read(await h.fetch("/api/shop/vary", fr));
    const b = await read(await h.fetch("/api/shop/vary", de));
    expect(b).toBe(a + 1);
    expect(await read(await h.fetch("/api/shop/vary", fr))).toBe(a);
    expect(await read(await h.fetch("/api/shop/vary", de))).toBe(b);
  });

  test("answers of a protected route are kept per caller (private), and the handler sees each caller", async () => {
    using h = await harness({}, build);
    const alice = { headers: { "x-api-key": createKey(h.dir.path, ["user"], "alice") } };
    const bob = { headers: { "x-api-key": createKey(h.dir.path, ["user"], "bob") } };
    const a = await h.fetch("/api/shop/mine", alice);
    expect(a.headers.get("cache-control")).toBe("private, max-age=5");
    const aRead = await read(a);
    const b = (await (await h.fetch("/api/shop/mine", bob)).json()) as { read: number; identity: { sub: string } };
    expect([b.read, b.identity.sub]).toEqual([aRead + 1, "bob"]);
    expect(await read(await h.fetch("/api/shop/mine", alice))).toBe(aRead);
  });

  test("a public cached route's handler does not see the caller (the answer is shared)", async () => {
    using h = await harness({}, build);
    const key = createKey(h.dir.path, ["user"], "alice");
    const first = await read(await h.fetch("/api/shop/items", { headers: { "x-api-key": key } }));
    const other = await h.fetch("/api/shop/items", { headers: { "x-api-key": createKey(h.dir.path, ["user"], "bob") } });
    expect([other.headers.get("x-cache"), await read(other)]).toEqual(["HIT", first]);
    expect(h.upstream.handled.at(-1)!.identity).toBeNull();
    await h.fetch("/api/shop/plain", { headers: { "x-api-key": key } });
    expect(h.upstream.handled.at(-1)!.identity).toEqual({ sub: "alice", roles: ["user"], via: "key" });
  });

  test("a caller's answers are kept per way of proving it and per roles", async () => {
    using h = await harness({}, build);
    const asKey = { headers: { "x-api-key": createKey(h.dir.path, ["user"], "bob") } };
    const asJwt = { headers: { authorization: `Bearer ${await jwt("bob", ["user"])}` } };
    const asAdmin = { headers: { authorization: `Bearer ${await jwt("bob", ["user", "admin"])}` } };
    const a = await read(await h.fetch("/api/shop/mine", asKey));
    expect(await read(await h.fetch("/api/shop/mine", asJwt))).toBe(a + 1);
    expect(await read(await h.fetch("/api/shop/mine", asAdmin))).toBe(a + 2);
    expect(await read(await h.fetch("/api/shop/mine", asJwt))).toBe(a + 1);
  });

  test("a cached 200 without a body is stored as null; a malformed header is refused before it is stored", async () => {
    using h = await harness({}, build);
    const res = await h.fetch("/api/shop/null");
    expect([res.headers.get("x-cache"), await res.text()]).toEqual(["MISS", "null"]);
    expect(await (await h.fetch("/api/shop/null")).text()).toBe("null");
    const bad = await h.fetch("/api/shop/bad-header");
    expect([bad.status, (await body(bad)).error]).toEqual([500, { code: "PLT_HANDLER_ERROR", message: 'shop: invalid response header "x-bad"' }]);
  });

  test("once the handler stops naming Vary (any letter case), its answers are shared again", async () => {
    using h = await harness({}, build);
    varyNext = true;
    const fr = { headers: { "accept-language": "fr" } };
    const de = { headers: { "accept-language": "de" } };
    const a = await read(await h.fetch("/api/shop/toggle", fr));
    expect(await read(await h.fetch("/api/shop/toggle", de))).toBe(a + 1);
    expect(await read(await h.fetch("/api/shop/toggle", fr))).toBe(a);
    varyNext = false;
    h.upstream.commit("shop", "changed");
    expect(await read(await h.fetch("/api/shop/toggle", fr))).toBe(a + 2);
    const shared = await h.fetch("/api/shop/toggle", de);
    expect([shared.headers.get("x-cache"), await read(shared)]).toEqual(["HIT", a + 2]);
  });

  test("a fallback answer is not stored: the next success is", async () => {
    using h = await harness({ gateway: { fallbacks: { "GET /api/shop/fallback": { status: 200, body: { read: 0 } } } } }, build);
    failNext = true;
    const fell = await h.fetch("/api/shop/fallback");
    expect([fell.status, fell.headers.get("x-plinth-fallback"), fell.headers.get("x-cache"), await read(fell)]).toEqual([200, "PLT_HANDLER_ERROR", null, 0]);
    failNext = false;
    const fresh = await h.fetch("/api/shop/fallback");
    expect(fresh.headers.get("x-cache")).toBe("MISS");
    const n = await read(fresh);
    expect(n).toBeGreaterThan(0);
    expect(await read(await h.fetch("/api/shop/fallback"))).toBe(n);
  });

  test("an event on an `invalidatedBy` filter clears the route's answers; other services' events do not", async () => {
    using h = await harness({}, build);
    const first = await read(await h.fetch("/api/shop/items"));
    h.upstream.commit("billing", "paid");
    expect(await read(await h.fetch("/api/shop/items"))).toBe(first);
    h.upstream.commit("shop", "created");
    expect(await read(await h.fetch("/api/shop/items"))).toBe(first + 1);
  });

  test("a replaced service's answers are not served", async () => {
    using h = await harness({}, build);
    const first = await read(await h.fetch("/api/shop/items"));
    build(h.upstream);
    expect(await read(await h.fetch("/api/shop/items"))).toBe(first + 1);
  });

  test("a GET that overlaps a committing POST: the answer read before the commit is returned but not stored", async () => {
    let state = "old";
    const entered = deferred<void>();
    const release = deferred<void>();
    let holdNext = true;
    let gets = 0;
    using h = await harness({}, (u) => {
      u.add("shop", [
        {
          method: "GET",
          path: "/items",
          auth: "public",
          cache: CACHED,
          handler: async () => {
            gets++;
            const read = state; // the answer is computed from the state before the commit
            if (holdNext) {
              holdNext = false;
              entered.resolve();
              await release.promise;
            }
            return json({ state: read });
          },
        },
        {
          method: "POST",
          path: "/items",
          auth: "public",
          handler: () => {
            state = "new";
            u.commit("shop", "created"); // the loader hears the commit before the POST is answered
            return json({ ok: true }, 201);
          },
        },
      ]);
    });
    const get = h.fetch("/api/shop/items");
    await entered.promise;
    expect((await h.fetch("/api/shop/items", { method: "POST" })).status).toBe(201);
    release.resolve();
    const stale = await get;
    expect(await stale.json()).toEqual({ state: "old" });
    expect(stale.headers.get("x-cache")).toBeNull();
    const after = await h.fetch("/api/shop/items");
    expect(await after.json()).toEqual({ state: "new" });
    expect(after.headers.get("x-cache")).toBe("MISS");
    expect(gets).toBe(2);
    expect(((await (await h.fetch("/api/shop/items")).json()) as { state: string }).state).toBe("new");
    expect(gets).toBe(2);
  });
});

describe("deadlines and limits", () => {
  test("the service is handed the request's deadline (gateway.requestTimeoutMs from arrival) and the time left", async () => {
    using h = await harness({ auth: { defaultPolicy: "public" }, gateway: { requestTimeoutMs: 4_000 } }, (u) => u.add("s", [{ method: "GET", path: "/" }]));
    const before = Date.now();
    await h.fetch("/api/s");
    const after = Date.now();
    const { deadline, timeoutMs } = h.upstream.handled[0]!;
    expect(deadline).toBeGreaterThanOrEqual(before + 4_000);
    expect(deadline).toBeLessThanOrEqual(after + 4_000);
    expect(timeoutMs).toBeGreaterThan(3_000);
    expect(timeoutMs).toBeLessThanOrEqual(4_000);
  });

  test("a body that does not arrive before the deadline: 408 PLT_REQUEST_TIMEOUT, the service never asked", async () => {
    using h = await harness({ auth: { defaultPolicy: "public" }, gateway: { requestTimeoutMs: 100 } }, (u) => u.add("s", [{ method: "POST", path: "/" }]));
    const stream = new ReadableStream<Uint8Array>({ pull: () => new Promise(() => {}) }, { highWaterMark: 0 });
    const res = await h.fetch("/api/s", { method: "POST", body: stream, headers: { "content-type": "application/json" } });
    expect([res.status, (await body(res)).error.code]).toEqual([408, "PLT_REQUEST_TIMEOUT"]);
    expect(h.upstream.handled).toHaveLength(0);
  });

  test("gateway.maxBodyBytes and gateway.maxJsonDepth hold for the body", async () => {
    using h = await harness({ auth: { defaultPolicy: "public" }, gateway: { maxBodyBytes: 16, maxJsonDepth: 2 } }, (u) => u.add("s", [{ method: "POST", path: "/" }]));
    const post = (text: string) => h.fetch("/api/s", { method: "POST", body: text, headers: { "content-type": "application/json" } });
    const large = await post(`"${"x".repeat(15)}"`);
    expect([large.status, (await body(large)).error.code]).toEqual([413, "PLT_BODY_TOO_LARGE"]);
    const deep = await post("[[[1]]]");
    expect([deep.status, (await body(deep)).error.code]).toEqual([400, "PLT_BAD_JSON"]);
    expect((await post("[[1]]")).status).toBe(200);
    expect(h.upstream.handled.map((r) => r.body)).toEqual([[[1]]]);
  });

  test("a caller verified asynchronously (a JWT) is served by the version that serves the route once verified", async () => {
    using h = await harness({}, (u) => u.add("s", [{ method: "GET", path: "/" }], { version: "1" }));
    const token = await jwt("bob");
    const answer = h.fetch("/api/s", { headers: { authorization: `Bearer ${token}` } });
    const next = h.upstream.add("s", [{ method: "GET", path: "/" }], { version: "2" });
    expect((await answer).status).toBe(200);
    expect(h.upstream.handled[0]!.service).toBe(next);
  });
});

describe("at the handler's edges", () => {
  let reads = 0;
  const CACHED = { ttlMs: 60_000, invalidatedBy: [] };
  const read = async (res: Response) => ((await res.json()) as { read: number }).read;

  test("the first segment after /api/ names the service even when empty: /api//shop/items is asked of service \"\"", async () => {
    using h = await harness({}, (u) => u.add("shop", [{ method: "GET", path: "/items", auth: "public" }]));
    const asked: string[][] = [];
    const match = h.upstream.match.bind(h.upstream);
    h.upstream.match = (service, method, path) => (asked.push([service, method, path]), match(service, method, path));
    const res = await h.fetch("/api//shop/items");
    expect([res.status, (await body(res)).error.code]).toEqual([404, "PLT_SERVICE_NOT_FOUND"]);
    expect(asked).toEqual([["", "GET", "/shop/items"]]);
    expect(h.upstream.handled).toHaveLength(0);
  });

  test("invalid credentials on a protected route are refused as invalid (the challenge says invalid_token), not as missing", async () => {
    using h = await harness({}, (u) => u.add("s", [{ method: "GET", path: "/mine" }, { method: "GET", path: "/admin", auth: ["admin"] }]));
    const forged = await new SignJWT({ roles: ["admin"] }).setProtectedHeader({ alg: "HS256" }).setSubject("bob").setExpirationTime("1h").sign(new TextEncoder().encode("another-secret-of-at-least-32-characters"));
    for (const path of ["/api/s/mine", "/api/s/admin"]) {
      const key = await h.fetch(path, { headers: { "x-api-key": "plk_no_such" } });
      expect([key.status, (await body(key)).error.message]).toEqual([401, "invalid API key (unknown or revoked)"]);
      expect(key.headers.get("www-authenticate")).toStartWith('Bearer realm="plinth", error="invalid_token"');
      // A JWT is verified asynchronously: its failure takes the other path.
      const token = await h.fetch(path, { headers: { authorization: `Bearer ${forged}` } });
      expect(token.status).toBe(401);
      expect((await body(token)).error.message).toStartWith("invalid bearer token");
      expect(token.headers.get("www-authenticate")).toStartWith('Bearer realm="plinth", error="invalid_token"');
    }
    expect(h.upstream.handled).toHaveLength(0);
  });

  test("a cached route keeps one answer per query string", async () => {
    using h = await harness({}, (u) => u.add("shop", [{ method: "GET", path: "/items", auth: "public", cache: CACHED, handler: () => json({ read: ++reads }) }]));
    const one = await read(await h.fetch("/api/shop/items?page=1"));
    const two = await read(await h.fetch("/api/shop/items?page=2"));
    expect(two).toBe(one + 1);
    expect(await read(await h.fetch("/api/shop/items?page=1"))).toBe(one);
    expect(await read(await h.fetch("/api/shop/items?page=2"))).toBe(two);
    expect(await read(await h.fetch("/api/shop/items"))).toBe(two + 1);
  });

  test("a caller's cached answers are kept per role list, not per the roles' letters run together", async () => {
    using h = await harness({}, (u) => u.add("shop", [{ method: "GET", path: "/mine", cache: CACHED, handler: () => json({ read: ++reads }) }]));
    const as = async (roles: string[]) => read(await h.fetch("/api/shop/mine", { headers: { authorization: `Bearer ${await jwt("bob", roles)}` } }));
    const two = await as(["a", "b"]);
    expect(await as(["ab"])).toBe(two + 1);
    expect(await as(["a", "b"])).toBe(two);
  });

  test("a stored answer keeps the handler's own headers, Vary included, on its first and later answers", async () => {
    using h = await harness({}, (u) =>
      u.add("shop", [{ method: "GET", path: "/items", auth: "public", cache: CACHED, handler: () => json({ read: ++reads }, 200, { "x-own": "yes", vary: "Accept-Language" }) }]),
    );
    const miss = await h.fetch("/api/shop/items");
    const hit = await h.fetch("/api/shop/items");
    expect([miss.headers.get("x-cache"), miss.headers.get("x-own"), miss.headers.get("vary")]).toEqual(["MISS", "yes", "Accept-Language"]);
    expect([hit.headers.get("x-cache"), hit.headers.get("x-own"), hit.headers.get("vary")]).toEqual(["HIT", "yes", "Accept-Language"]);
  });

  test("only Vary names request headers to key on: another four-letter header (Link) is stored and replayed as it is", async () => {
    const link = '<https://shop.test/items?page=2>; rel="next"';
    using h = await harness({}, (u) => u.add("shop", [{ method: "GET", path: "/items", auth: "public", cache: CACHED, handler: () => json({ read: ++reads }, 200, { link }) }]));
    const miss = await h.fetch("/api/shop/items");
    expect([miss.status, miss.headers.get("x-cache"), miss.headers.get("link")]).toEqual([200, "MISS", link]);
    const first = await read(miss);
    const hit = await h.fetch("/api/shop/items", { headers: { "accept-language": "fr" } });
    expect([hit.headers.get("x-cache"), hit.headers.get("link"), await read(hit)]).toEqual(["HIT", link, first]);
  });

  test("Vary naming the same headers in another order keeps the answers stored under the first", async () => {
    let answers = 0;
    using h = await harness({}, (u) =>
      u.add("shop", [
        {
          method: "GET",
          path: "/items",
          auth: "public",
          cache: CACHED,
          handler: () => json({ read: ++reads }, 200, { vary: answers++ % 2 === 0 ? "Accept-Language, Accept" : "accept, accept-language" }),
        },
      ]),
    );
    const fr = { headers: { "accept-language": "fr" } };
    const de = { headers: { "accept-language": "de" } };
    const a = await read(await h.fetch("/api/shop/items", fr));
    expect(await read(await h.fetch("/api/shop/items", de))).toBe(a + 1);
    const again = await h.fetch("/api/shop/items", fr);
    expect([again.headers.get("x-cache"), await read(again)]).toEqual(["HIT", a]);
    expect(answers).toBe(2);
  });

  test("a route that is no longer cached in its service's new version is forwarded with the caller, though the old one's answers named Vary", async () => {
    using h = await harness({}, (u) =>
      u.add("s", [{ method: "GET", path: "/x", auth: "public", cache: CACHED, handler: () => json({ read: ++reads }, 200, { vary: "Accept-Language" }) }]),
    );
    expect((await h.fetch("/api/s/x")).headers.get("x-cache")).toBe("MISS");
    h.upstream.add("s", [{ method: "GET", path: "/x", auth: "public", handler: (r) => json({ identity: r.identity ?? null }) }]);
    const key = createKey(h.dir.path, ["user"], "alice");
    const res = await h.fetch("/api/s/x", { headers: { "x-api-key": key } });
    expect(res.headers.get("x-cache")).toBeNull();
    expect(await res.json()).toEqual({ identity: { sub: "alice", roles: ["user"], via: "key" } });
  });
});
