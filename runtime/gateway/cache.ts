/**
 * Cached answers of GET routes that declare `cache`: bounded by entries and
 * bytes (least recently used dropped first), each with a strong ETag, and
 * cleared per route when an event on one of its `invalidatedBy` filters commits.
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
  expiresAt: number;
  bytes: number;
}

export class ResponseCache {
  private readonly entries = new Map<string, Entry>();
  /** Topic filter → routes it invalidates. */
  private readonly invalidators = new Map<string, Set<string>>();
  private bytes = 0;

  constructor(
    private readonly maxEntries: number,
    private readonly maxBytes: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: string): CachedResponse | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    if (entry.expiresAt <= this.now()) {
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
    this.entries.set(key, { ...cached, route, expiresAt: this.now() + ttlMs, bytes });
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

  /** An event committed on `topic`: drop the entries of every route watching it. */
  invalidate(topic: string): void {
    let routes: Set<string> | undefined;
    for (const [filter, watching] of this.invalidators) {
      if (topicMatches(filter, topic)) for (const r of watching) (routes ??= new Set()).add(r);
    }
    if (routes) this.clear((route) => routes.has(route));
  }

  /** Drops every entry whose route satisfies `predicate` (e.g. all of a replaced service). */
  clear(predicate: (route: string) => boolean = () => true): void {
    for (const [key, entry] of this.entries) if (predicate(entry.route)) this.remove(key);
  }

  private remove(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    this.bytes -= entry.bytes;
  }
}
