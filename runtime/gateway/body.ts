/**
 * Reads a request body within a size limit (stopping as soon as it is
 * exceeded, chunked or not) and a deadline (a slow client gets 408), and
 * decodes it by content type. On every POST's path: no `async`, and
 * `request.body` (which builds a stream) is touched only when no
 * Content-Length says how much is coming.
 */
import { PlinthError } from "../errors";
import { Deadlines } from "./deadlines";
import { nestsDeeperThan } from "../json-depth";

/** One sweep for every body being read, not a timer per request. */
const deadlines = new Deadlines(() => new PlinthError("PLT_REQUEST_TIMEOUT", "request body not received in time"));

/** "untyped": no Content-Type on a route without a body schema, read as JSON if there is a body. */
type Decoded = "json" | "untyped" | "text";

/** What a body may be: at most `maxBytes` long and, as JSON, at most `maxJsonDepth` arrays or objects deep. */
export interface BodyLimits {
  maxBytes: number;
  maxJsonDepth: number;
}

/**
 * The decoded body, or undefined (not a promise) when the request has none. `declaresBody`: the
 * route declares a body schema, so a body must say it is JSON (one without a Content-Type is refused).
 */
export function readBody(request: Request, limits: BodyLimits, deadline = Number.POSITIVE_INFINITY, declaresBody = false): Promise<unknown> | undefined {
  const method = request.method;
  if (method === "GET" || method === "HEAD") return undefined;
  const headers = request.headers;
  const length = headers.get("content-length");
  const type = headers.get("content-type");
  const decoded: Decoded | PlinthError = type === "application/json" ? "json" : type === null ? (declaresBody ? untyped() : "untyped") : mediaType(type);
  const { maxBytes } = limits;
  let text: Promise<string>;
  if (length !== null) {
    // The runtime holds the body to its Content-Length: read it whole, natively.
    const declared = Number(length);
    if (declared > maxBytes) return Promise.reject(tooLarge(maxBytes));
    if (declared === 0) return decoded === "json" ? Promise.reject(empty()) : undefined;
    text = request.text();
  } else {
    const body = request.body;
    if (!body) return decoded === "json" ? Promise.reject(empty()) : undefined;
    text = readChunked(body, maxBytes);
  }
  return deadlines.race(text, deadline).then((t) => decode(t, decoded, limits.maxJsonDepth));
}

function empty(): PlinthError {
  return new PlinthError("PLT_BAD_JSON", "malformed JSON body: empty");
}

function untyped(): PlinthError {
  return new PlinthError("PLT_UNSUPPORTED_MEDIA_TYPE", "request body without a content-type: send application/json");
}

function mediaType(header: string): Decoded | PlinthError {
  const type = header.split(";")[0]!.trim().toLowerCase();
  if (type === "application/json" || type.endsWith("+json")) return "json";
  if (type.startsWith("text/")) return "text";
  return new PlinthError("PLT_UNSUPPORTED_MEDIA_TYPE", `unsupported content-type "${type}": send application/json`);
}

/**
 * An empty body is no body, except as JSON: there, as for `Request.json()`, it is malformed (a
 * byte-order mark alone is empty too: the UTF-8 decoder drops it).
 */
function decode(text: string, as: Decoded | PlinthError, maxDepth: number): unknown {
  if (as instanceof PlinthError) {
    if (text.length === 0) return undefined;
    throw as;
  }
  if (text.length === 0) {
    if (as === "json") throw empty();
    return undefined;
  }
  if (as === "text") return text;
  if (nestsDeeperThan(text, maxDepth)) {
    throw new PlinthError("PLT_BAD_JSON", `JSON body nested deeper than ${maxDepth} levels (gateway.maxJsonDepth)`, { data: { maxJsonDepth: maxDepth } });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new PlinthError("PLT_BAD_JSON", `malformed JSON body: ${(err as Error).message}`);
  }
}

/** A body without Content-Length, counted chunk by chunk so an endless one stops at the limit. */
async function readChunked(body: ReadableStream<Uint8Array>, maxBytes: number): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.byteLength;
    if (size > maxBytes) throw tooLarge(maxBytes);
    chunks.push(chunk);
  }
  return new TextDecoder().decode(Buffer.concat(chunks));
}

function tooLarge(maxBytes: number): PlinthError {
  return new PlinthError("PLT_BODY_TOO_LARGE", `request body exceeds ${maxBytes} bytes`, { data: { maxBytes } });
}
