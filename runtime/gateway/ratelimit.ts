/**
 * Token buckets, one per caller and route: `limit` tokens, refilled continuously
 * at `limit` per `windowMs`. At most `maxKeys` buckets are kept; the least
 * recently used goes first (a forgotten bucket starts full again).
 */
export interface RateLimitResult {
  allowed: boolean;
  /** For the RateLimit-* headers (draft-ietf-httpapi-ratelimit-headers). */
  headers: Record<string, string>;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly maxKeys: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.buckets.size;
  }

  take(key: string, limit: number, windowMs: number): RateLimitResult {
    const now = this.now();
    const perMs = limit / windowMs;
    let bucket = this.buckets.get(key);
    if (bucket) {
      this.buckets.delete(key); // re-inserted below: Map order is the LRU order
      bucket.tokens = Math.min(limit, bucket.tokens + (now - bucket.at) * perMs);
      bucket.at = now;
    } else {
      bucket = { tokens: limit, at: now };
      if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    }
    this.buckets.set(key, bucket);
    const allowed = bucket.tokens >= 1;
    if (allowed) bucket.tokens -= 1;
    const seconds = (tokens: number) => String(Math.max(0, Math.ceil(tokens / perMs / 1000)));
    const headers: Record<string, string> = {
      "ratelimit-limit": String(limit),
      "ratelimit-remaining": String(Math.floor(bucket.tokens)),
      // Seconds until the bucket is full again.
      "ratelimit-reset": seconds(limit - bucket.tokens),
    };
    if (!allowed) headers["retry-after"] = String(Math.max(1, Number(seconds(1 - bucket.tokens))));
    return { allowed, headers };
  }
}
