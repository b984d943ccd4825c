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
  /** The most recently used key: already last in the Map's order (a busy caller skips the re-insert). */
  private lastKey: string | null = null;

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
      if (key !== this.lastKey) {
        this.buckets.delete(key); // re-inserted below: Map order is the LRU order
        this.buckets.set(key, bucket);
      }
      bucket.tokens = Math.min(limit, bucket.tokens + (now - bucket.at) * perMs);
      bucket.at = now;
    } else {
      bucket = { tokens: limit, at: now };
      if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
      this.buckets.set(key, bucket);
    }
    this.lastKey = key;
    const allowed = bucket.tokens >= 1;
    if (allowed) bucket.tokens -= 1;
    const headers: Record<string, string> = {
      "ratelimit-limit": String(limit),
      "ratelimit-remaining": String(Math.floor(bucket.tokens)),
      // Seconds until the bucket is full again.
      "ratelimit-reset": String(Math.max(0, Math.ceil((limit - bucket.tokens) / perMs / 1000))),
    };
    if (!allowed) headers["retry-after"] = String(Math.max(1, Math.ceil((1 - bucket.tokens) / perMs / 1000)));
    return { allowed, headers };
  }
}
