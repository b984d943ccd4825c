/**
 * Cached answers of GET routes that declare `cache`: bounded by entries and
 * bytes (least recently used dropped first), each with a strong ETag, and
 * retired per route (a new generation) when an event on one of its `invalidatedBy` filters commits.
 */
import { topicMatches } from "../protocol";

export interface CachedResponse {
  status: number;
  /** The stored headers, ETag included. */
  headers: Record<string, string>;
  /** The JSON text of the body. */
  body: string;
  etag: string;
  /** `headers` with `x-cache: HIT`, built once: a plain hit allocates no header object. */
  hitHeaders: Headers;
}

interface Entry extends CachedResponse {
  route: string;
  /** The route's generation when stored: an entry of an earlier one is stale (dropped when met). */
  generation: number;
  expiresAt: number;
  bytes: number;
}

export class ResponseCache {
  private readonly entries = new Map<string, Entry>();
  /** Topic filter → routes it invalidates. */
  private readonly invalidators = new Map<string, Set<string>>();
  /** Per route, how many times it was invalidated: an answer read before an invalidation is not stored. */
  private readonly generations = new Map<string, number>();
  private bytes = 0;

  constructor(
    private readonly maxEntries: number,
    private readonly maxBytes: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** Some route is cleared by events: committed events need looking at. */
  get watching(): boolean {
    return this.invalidators.size > 0;
  }

  get(key: string): CachedResponse | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    if (entry.expiresAt <= this.now() || entry.generation !== this.generation(entry.route)) {
      this.bytes -= entry.bytes;
      return undefined;
    }
    this.entries.set(key, entry); // most recently used last
    return entry;
  }

  set(key: string, route: string, ttlMs: number, response: Pick<CachedResponse, "status" | "headers" | "body">): CachedResponse {
    const etag = `"${Bun.hash(response.body).toString(36)}"`;
    const headers = { ...response.headers, etag };
    const cached: CachedResponse = { ...response, headers, etag, hitHeaders: new Headers({ ...headers, "x-cache": "HIT" }) };
    const bytes = key.length + response.body.length + 64;
    if (bytes > this.maxBytes || this.maxEntries === 0) return cached;
    this.remove(key);
    while (this.entries.size >= this.maxEntries || this.bytes + bytes > this.maxBytes) this.remove(this.entries.keys().next().value!);
    this.entries.set(key, { ...cached, route, generation: this.generation(route), expiresAt: this.now() + ttlMs, bytes });
    this.bytes += bytes;
    return cached;
  }

  /** Route `route`'s entries are cleared by events on `filters`. */
  watch(route: string, filters: readonly string[]): void {
    for (const filter of filters) {
      let routes = this.invalidators.get(filter);
      if (!routes) this.invalidators.set(filter, (routes = new Set()));
      routes.add(route);
    }
  }

  /** Changes whenever `route` is invalidated (compare before and after reading an answer to store). */
  generation(route: string): number {
    return this.generations.get(route) ?? 0;
  }

  /**
   * An event committed on `topic`: every route watching it moves to a new generation, so none of its
   * entries is served again (they are dropped when next met, or by the LRU; no scan of all entries).
   */
  invalidate(topic: string): void {
    for (const [filter, watching] of this.invalidators) {
      if (!topicMatches(filter, topic)) continue;
      for (const route of watching) this.generations.set(route, this.generation(route) + 1);
    }
  }

  private remove(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    this.bytes -= entry.bytes;
  }
}
