/**
 * HTTP/1.1 over a raw TCP socket, for requests fetch() will not send as written (any method, odd or
 * missing Host headers, CONNECT, pipelining): writes bytes as given and parses the answers as they
 * arrive (status line, headers, then the body by Content-Length or chunks).
 */
import { connect, type Socket } from "node:net";

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface RawConnection {
  /** The answers parsed so far, in order. */
  readonly answers: readonly RawResponse[];
  /** Writes bytes exactly as given. */
  write(data: string | Uint8Array): void;
  /** Resolves with the first `n` answers, or rejects (naming what arrived) if the connection closes first or `timeoutMs` passes. */
  responses(n: number, timeoutMs?: number): Promise<RawResponse[]>;
  /** Resolves once the server has closed the connection. */
  closed: Promise<void>;
  close(): void;
}

/** `head`: the answers are to HEAD requests (no body follows their headers). */
export async function openRaw(port: number, { host = "127.0.0.1", head = false } = {}): Promise<RawConnection> {
  const socket: Socket = connect(port, host);
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  let buffer = Buffer.alloc(0);
  const parsed: RawResponse[] = [];
  const waiters = new Set<() => void>();
  let ended = false;
  const closed = new Promise<void>((resolve) => socket.once("close", () => ((ended = true), resolve(), waiters.forEach((w) => w()))));
  socket.on("error", () => {});
  socket.on("data", (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    for (let next = parseOne(buffer, head); next; next = parseOne(buffer, head)) {
      parsed.push(next.response);
      buffer = buffer.subarray(next.used);
    }
    for (const w of waiters) w();
  });
  return {
    answers: parsed,
    write: (data) => void socket.write(data),
    closed,
    close: () => socket.destroy(),
    responses(n, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (parsed.length >= n) return done(() => resolve(parsed.slice(0, n)));
          if (ended) done(() => reject(new Error(`connection closed after ${parsed.length} of ${n} answers (${buffer.length} bytes unparsed)`)));
        };
        const timer = setTimeout(() => done(() => reject(new Error(`${parsed.length} of ${n} answers within ${timeoutMs} ms`))), timeoutMs);
        const done = (settle: () => void) => {
          clearTimeout(timer);
          waiters.delete(check);
          settle();
        };
        waiters.add(check);
        check();
      });
    },
  };
}

/** Sends `request` on a new connection and returns its one answer. */
export async function rawRequest(port: number, request: string | Uint8Array, timeoutMs?: number): Promise<RawResponse> {
  const conn = await openRaw(port, { head: typeof request === "string" && request.startsWith("HEAD ") });
  try {
    conn.write(request);
    return (await conn.responses(1, timeoutMs))[0]!;
  } finally {
    conn.close();
  }
}

/** One request's bytes: the header lines as given (no Host is added), then the body. */
export function requestBytes(method: string, target: string, headers: Array<[string, string]>, body?: Buffer | string): Buffer {
  const lines = [`${method} ${target} HTTP/1.1`, ...headers.map(([k, v]) => `${k}: ${v}`)];
  return Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1"), body === undefined ? Buffer.alloc(0) : Buffer.from(body)]);
}

/**
 * Sends `bytes` to `url` and resolves, never rejects, with the answers that came before `expect` of
 * them arrived, the connection closed, or `timeoutMs` passed (none if the server is not there).
 */
export async function rawHttp(url: string, bytes: Buffer, options: { expect?: number; timeoutMs?: number; headOnly?: boolean } = {}): Promise<{ answers: RawResponse[] }> {
  const { hostname, port } = new URL(url);
  const conn = await openRaw(Number(port), { host: hostname, head: options.headOnly ?? false }).catch(() => null);
  if (!conn) return { answers: [] };
  try {
    conn.write(bytes);
    await conn.responses(options.expect ?? 1, options.timeoutMs).catch(() => {});
    return { answers: [...conn.answers] };
  } finally {
    conn.close();
  }
}

function parseOne(buffer: Buffer, head: boolean): { response: RawResponse; used: number } | null {
  const end = buffer.indexOf("\r\n\r\n");
  if (end < 0) return null;
  const [statusLine, ...lines] = buffer.subarray(0, end).toString("latin1").split("\r\n");
  const status = Number(statusLine!.split(" ")[1]);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let at = end + 4;
  if (head) return { response: { status, headers, body: "" }, used: at };
  if (headers["transfer-encoding"]?.includes("chunked")) {
    const parts: Buffer[] = [];
    for (;;) {
      const lineEnd = buffer.indexOf("\r\n", at);
      if (lineEnd < 0) return null;
      const size = parseInt(buffer.subarray(at, lineEnd).toString("latin1"), 16);
      if (buffer.length < lineEnd + 2 + size + 2) return null;
      parts.push(buffer.subarray(lineEnd + 2, lineEnd + 2 + size));
      at = lineEnd + 2 + size + 2;
      if (size === 0) break;
    }
    return { response: { status, headers, body: Buffer.concat(parts).toString() }, used: at };
  }
  const length = Number(headers["content-length"] ?? 0);
  if (buffer.length < at + length) return null;
  return { response: { status, headers, body: buffer.subarray(at, at + length).toString() }, used: at + length };
}
