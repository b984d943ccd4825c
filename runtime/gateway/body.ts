/**
 * Reads a request body within a size limit (stopping as soon as it is
 * exceeded, chunked or not) and a deadline (a slow client gets 408), and
 * decodes it by content type.
 */
import { PlinthError } from "../errors";

export function readBody(request: Request, maxBytes: number, deadline = Number.POSITIVE_INFINITY): Promise<unknown> {
  if (!Number.isFinite(deadline)) return read(request, maxBytes);
  let timer: Timer | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new PlinthError("PLT_REQUEST_TIMEOUT", "request body not received in time")), Math.max(0, deadline - Date.now()));
  });
  return Promise.race([read(request, maxBytes), timeout]).finally(() => clearTimeout(timer));
}

async function read(request: Request, maxBytes: number): Promise<unknown> {
  const declared = Number(request.headers.get("content-length") ?? "NaN");
  if (declared > maxBytes) throw tooLarge(maxBytes);
  if (!request.body) return undefined;

  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of request.body) {
    size += chunk.byteLength;
    if (size > maxBytes) throw tooLarge(maxBytes);
    chunks.push(chunk);
  }
  if (size === 0) return undefined;
  const text = new TextDecoder().decode(Buffer.concat(chunks));

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

function tooLarge(maxBytes: number): PlinthError {
  return new PlinthError("PLT_BODY_TOO_LARGE", `request body exceeds ${maxBytes} bytes`, { data: { maxBytes } });
}
