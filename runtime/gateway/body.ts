/**
 * Reads a request body within a size limit (stopping as soon as it is
 * exceeded, chunked or not) and a deadline (a slow client gets 408), and
 * decodes it by content type. On every POST's path: no `async`, and
 * `request.body` (which builds a stream) is touched only when no
 * Content-Length says how much is coming.
 */
import { PlinthError } from "../errors";
import { Deadlines } from "./deadlines";

/** One sweep for every body being read, not a timer per request. */
const deadlines = new Deadlines(() => new PlinthError("PLT_REQUEST_TIMEOUT", "request body not received in time"));

type Decoded = "json" | "text";

/** The decoded body, or undefined (not a promise) when the request has none. */
export function readBody(request: Request, maxBytes: number, deadline = Number.POSITIVE_INFINITY): Promise<unknown> | undefined {
  const method = request.method;
  if (method === "GET" || method === "HEAD") return undefined;
  const headers = request.headers;
  const length = headers.get("content-length");
  let text: Promise<string>;
  if (length !== null) {
    // The runtime holds the body to its Content-Length: read it whole, natively.
    const declared = Number(length);
    if (declared > maxBytes) return Promise.reject(tooLarge(maxBytes));
    if (declared === 0) return undefined;
    text = request.text();
  } else {
    const body = request.body;
    if (!body) return undefined;
    text = readChunked(body, maxBytes);
  }
  const type = headers.get("content-type");
  const decoded: Decoded | PlinthError = type === null || type === "application/json" ? "json" : mediaType(type);
  return deadlines.race(text, deadline).then((t) => decode(t, decoded));
}

function mediaType(header: string): Decoded | PlinthError {
  const type = header.split(";")[0]!.trim().toLowerCase();
  if (type === "application/json" || type.endsWith("+json")) return "json";
  if (type.startsWith("text/")) return "text";
  return new PlinthError("PLT_UNSUPPORTED_MEDIA_TYPE", `unsupported content-type "${type}": send application/json`);
}

function decode(text: string, as: Decoded | PlinthError): unknown {
  if (text.length === 0) return undefined;
  if (as instanceof PlinthError) throw as;
  if (as === "text") return text;
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
