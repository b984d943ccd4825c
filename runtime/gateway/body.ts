/**
 * Reads a request body within a size limit (stopping as soon as it is
 * exceeded, chunked or not) and a deadline (a slow client gets 408), and
 * decodes it by content type.
 */
import { PlinthError } from "../errors";
import { Deadlines } from "./deadlines";

/** One sweep for every body being read, not a timer per request. */
const deadlines = new Deadlines(() => new PlinthError("PLT_REQUEST_TIMEOUT", "request body not received in time"));

export async function readBody(request: Request, maxBytes: number, deadline = Number.POSITIVE_INFINITY): Promise<unknown> {
  const declared = Number(request.headers.get("content-length") ?? "NaN");
  if (declared > maxBytes) throw tooLarge(maxBytes);
  if (!request.body) return undefined;
  // With a Content-Length the runtime holds the body to it: read it whole, natively.
  const text = await deadlines.race(Number.isFinite(declared) ? request.text() : readChunked(request.body, maxBytes), deadline);
  if (text.length === 0) return undefined;

  const type = (request.headers.get("content-type") ?? "application/json").split(";")[0]!.trim().toLowerCase();
  if (type === "application/json" || type.endsWith("+json")) {
    try {
      return JSON.parse(text);
    } catch (err) {
      throw new PlinthError("PLT_BAD_JSON", `malformed JSON body: ${(err as Error).message}`);
    }
  }
  if (type.startsWith("text/")) return text;
  throw new PlinthError("PLT_UNSUPPORTED_MEDIA_TYPE", `unsupported content-type "${type}": send application/json`);
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
