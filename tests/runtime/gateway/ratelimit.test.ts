import { describe, expect, test } from "bun:test";
import { RateLimiter } from "../../../runtime/gateway/ratelimit";

describe("RateLimiter (token bucket, fake clock)", () => {
  test("limit requests pass, the next is refused with Retry-After; tokens refill continuously", () => {
    let now = 0;
    const limiter = new RateLimiter(100, () => now);
    const take = () => limiter.take("a", 2, 1_000);
    expect(take()).toEqual({ allowed: true, headers: { "ratelimit-limit": "2", "ratelimit-remaining": "1", "ratelimit-reset": "1" } });
    expect(take().allowed).toBe(true);
    const refused = take();
    expect(refused.allowed).toBe(false);
    expect(refused.headers["retry-after"]).toBe("1");
    expect(refused.headers["ratelimit-remaining"]).toBe("0");
    now = 499; // 0.998 tokens: still refused
    expect(take().allowed).toBe(false);
    now = 500 + 499; // one token back (refill counts from the last take)
    expect(take().allowed).toBe(true);
    expect(take().allowed).toBe(false);
  });

  test("buckets are per key", () => {
    const limiter = new RateLimiter(100, () => 0);
    expect(limiter.take("a", 1, 1_000).allowed).toBe(true);
    expect(limiter.take("a", 1, 1_000).allowed).toBe(false);
    expect(limiter.take("b", 1, 1_000).allowed).toBe(true);
  });

  test("memory is bounded: the least recently used bucket is dropped", () => {
    const limiter = new RateLimiter(3, () => 0);
    for (const key of ["a", "b", "c"]) limiter.take(key, 1, 1_000);
    limiter.take("a", 1, 1_000); // a is now the most recent
    for (let i = 0; i < 10_000; i++) limiter.take(`ip:${i}`, 1, 1_000);
    expect(limiter.size).toBe(3);
  });

  test("a bucket used recently survives churn of other keys", () => {
    const limiter = new RateLimiter(2, () => 0);
    limiter.take("kept", 1, 60_000);
    limiter.take("x", 1, 60_000);
    limiter.take("kept", 1, 60_000); // refused, and touched
    limiter.take("y", 1, 60_000); // evicts x, not kept
    expect(limiter.take("kept", 1, 60_000).allowed).toBe(false);
  });
});

describe("RateLimiter: RateLimit-Reset and Retry-After in seconds", () => {
  test("RateLimit-Reset: seconds until the bucket is full again", () => {
    const limiter = new RateLimiter(100, () => 0);
    // 10 per minute: one token every 6 s; one taken, full again in 6 s.
    expect(limiter.take("a", 10, 60_000).headers["ratelimit-reset"]).toBe("6");
    expect(limiter.take("a", 10, 60_000).headers["ratelimit-reset"]).toBe("12");
  });

  test("Retry-After: seconds until the next token, counting what has refilled", () => {
    let now = 0;
    const limiter = new RateLimiter(100, () => now);
    expect(limiter.take("a", 1, 60_000).allowed).toBe(true);
    const refused = limiter.take("a", 1, 60_000);
    expect([refused.allowed, refused.headers["retry-after"]]).toEqual([false, "60"]);
    now = 30_000; // half a token back
    const later = limiter.take("a", 1, 60_000);
    expect([later.allowed, later.headers["retry-after"], later.headers["ratelimit-reset"]]).toEqual([false, "30", "30"]);
  });
});
