import { describe, expect, test } from "bun:test";
import { ResponseCache } from "../../../runtime/gateway/cache";

const answer = (body: string) => ({ status: 200, headers: {}, body });

describe("ResponseCache", () => {
  test("an entry lives for its TTL and carries a strong ETag of its body", () => {
    let now = 0;
    const cache = new ResponseCache(10, 10_000, () => now);
    const stored = cache.set("k", "GET /api/a", 1_000, answer('{"a":1}'));
    expect(stored.etag).toMatch(/^"[0-9a-z]+"$/);
    expect(cache.set("k2", "GET /api/a", 1_000, answer('{"a":1}')).etag).toBe(stored.etag);
    expect(cache.set("k3", "GET /api/a", 1_000, answer('{"a":2}')).etag).not.toBe(stored.etag);
    now = 999;
    expect(cache.get("k")?.body).toBe('{"a":1}');
    now = 1_000;
    expect(cache.get("k")).toBeUndefined();
  });

  test("bounded by entries and by bytes, least recently used first", () => {
    const cache = new ResponseCache(2, 10_000, () => 0);
    cache.set("a", "r", 1_000, answer("1"));
    cache.set("b", "r", 1_000, answer("2"));
    cache.get("a");
    cache.set("c", "r", 1_000, answer("3"));
    expect([cache.get("a")?.body, cache.get("b")?.body, cache.get("c")?.body]).toEqual(["1", undefined, "3"]);

    const small = new ResponseCache(100, 200, () => 0);
    small.set("x", "r", 1_000, answer("x".repeat(100)));
    small.set("y", "r", 1_000, answer("y".repeat(100)));
    expect(small.size).toBe(1);
    expect(small.get("y")).toBeDefined();
    small.set("huge", "r", 1_000, answer("z".repeat(1_000))); // larger than the whole cache: not kept
    expect(small.get("huge")).toBeUndefined();
    expect(small.get("y")).toBeDefined();
  });

  test("each invalidation of a route changes its generation (an answer read before it is not stored)", () => {
    const cache = new ResponseCache(10, 10_000, () => 0);
    cache.watch("GET /api/orders", ["events/orders/#"]);
    const before = cache.generation("GET /api/orders");
    cache.invalidate("events/inventory/x");
    expect(cache.generation("GET /api/orders")).toBe(before);
    cache.invalidate("events/orders/created");
    expect(cache.generation("GET /api/orders")).toBe(before + 1);
  });

  test("an event on a watched filter clears that route's entries only", () => {
    const cache = new ResponseCache(10, 10_000, () => 0);
    cache.watch("GET /api/orders", ["events/orders/#"]);
    cache.set("o1", "GET /api/orders", 60_000, answer("[]"));
    cache.set("o2", "GET /api/orders", 60_000, answer("[1]"));
    cache.set("i", "GET /api/inventory", 60_000, answer("{}"));
    cache.invalidate("events/inventory/stock.changed");
    expect(cache.get("o1")).toBeDefined();
    cache.invalidate("events/orders/created");
    expect(cache.get("o1")).toBeUndefined();
    expect(cache.get("o2")).toBeUndefined();
    expect(cache.get("i")).toBeDefined();
    // Stale entries leave when met (no scan of every entry per event); an answer stored after the event is served.
    expect(cache.size).toBe(1);
    cache.set("o1", "GET /api/orders", 60_000, answer("[2]"));
    expect(cache.get("o1")?.body).toBe("[2]");
  });
});

describe("ResponseCache: byte accounting", () => {
  // An entry weighs its key, its body and 64 bytes of bookkeeping: "k" + 35 bytes of body = 100.
  const body100 = (c: string) => answer(c.repeat(35));

  test("an answer exactly as large as the cache is kept; one byte more is not", () => {
    const cache = new ResponseCache(10, 100, () => 0);
    cache.set("k", "r", 1_000, body100("a"));
    expect(cache.get("k")?.body).toBe("a".repeat(35));
    cache.set("j", "r", 1_000, answer("b".repeat(36)));
    expect(cache.get("j")).toBeUndefined();
    expect(cache.get("k")).toBeDefined();
  });

  test("answers that fill the cache exactly are all kept", () => {
    const cache = new ResponseCache(10, 200, () => 0);
    cache.set("a", "r", 1_000, body100("a"));
    cache.set("b", "r", 1_000, body100("b"));
    expect([cache.get("a") !== undefined, cache.get("b") !== undefined]).toEqual([true, true]);
  });

  test("storing a key again replaces its entry: its old bytes no longer count", () => {
    const cache = new ResponseCache(10, 200, () => 0);
    cache.set("k", "r", 1_000, body100("a"));
    cache.set("k", "r", 1_000, body100("b"));
    cache.set("j", "r", 1_000, body100("c"));
    expect([cache.get("k")?.body, cache.get("j")?.body]).toEqual(["b".repeat(35), "c".repeat(35)]);
  });

  test("an expired entry met by a read gives its bytes back", () => {
    let now = 0;
    const cache = new ResponseCache(10, 200, () => now);
    cache.set("x", "r", 10, body100("x"));
    now = 10;
    expect(cache.get("x")).toBeUndefined();
    cache.set("a", "r", 1_000, body100("a"));
    cache.set("b", "r", 1_000, body100("b"));
    expect([cache.get("a") !== undefined, cache.get("b") !== undefined]).toEqual([true, true]);
  });

  test("with no entries allowed nothing is stored, and the answer still carries its ETag", () => {
    const cache = new ResponseCache(0, 10_000, () => 0);
    expect(cache.set("k", "r", 1_000, answer("1")).etag).toMatch(/^"[0-9a-z]+"$/);
    expect(cache.get("k")).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  test("two routes watching the same filter are both invalidated by its events", () => {
    const cache = new ResponseCache(10, 10_000, () => 0);
    cache.watch("GET /api/a", ["events/orders/#"]);
    cache.watch("GET /api/b", ["events/orders/#"]);
    cache.invalidate("events/orders/created");
    expect([cache.generation("GET /api/a"), cache.generation("GET /api/b")]).toEqual([1, 1]);
  });
});
