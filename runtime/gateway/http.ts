/**
 * Shaping requests and answers at the gateway's edge: path segments, the headers a handler may see
 * and send, and answers from the response cache.
 */
import { PlinthError } from "../errors";
import type { HttpResponse } from "../worker/channel";
import type { CachedResponse } from "./cache";
import type { UpstreamMatch } from "./upstream";

/**
 * The request's headers for the handler, without the credentials: they stay at the gateway, the
 * handler gets the identity they proved. (`toJSON` builds a fresh object: deleting from it is ours to do.)
 */
export function forwardedHeaders(incoming: Headers): Record<string, string> {
  const all = incoming.toJSON();
  if (all.authorization !== undefined) delete all.authorization;
  if (all["x-api-key"] !== undefined) delete all["x-api-key"];
  return all;
}

/** A cached answer: 304 when the client holds its ETag, else the stored body (headers prebuilt for plain hits). */
export function cachedResponse(request: Request, hit: CachedResponse, rateHeaders: Record<string, string> | undefined, state: "HIT" | "MISS"): Response {
  const conditional = request.headers.get("if-none-match");
  const fresh = conditional !== null && conditional.split(",").some((tag) => tag.trim().replace(/^W\//, "") === hit.etag || tag.trim() === "*");
  if (!fresh && !rateHeaders && state === "HIT") return new Response(hit.body, { status: hit.status, headers: hit.hitHeaders });
  const headers: Record<string, string> = { ...hit.headers, ...rateHeaders, "x-cache": state };
  if (fresh) return new Response(null, { status: 304, headers });
  return new Response(hit.body, { status: hit.status, headers });
}

export function decode(segment: string): string {
  if (!segment.includes("%")) return segment;
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new PlinthError("PLT_BAD_REQUEST", `malformed percent-encoding in path segment "${segment}"`);
  }
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** A handler's response headers must be well-formed: a CR/LF in a value would let a caller inject headers. */
export function checkHeaders(match: UpstreamMatch, reply: HttpResponse): void {
  for (const [name, value] of Object.entries(reply.headers)) {
    if (!HEADER_NAME.test(name) || typeof value !== "string" || !HEADER_VALUE.test(value)) {
      throw new PlinthError("PLT_HANDLER_ERROR", `${match.service.name}: invalid response header ${JSON.stringify(name)}`);
    }
  }
}
