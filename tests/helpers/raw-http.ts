/**
 * HTTP/1.1 over a raw TCP socket, for requests fetch will not send: any method, Host header
 * (or none), path bytes and body, and several requests pipelined on one connection. Answers are
 * read as the server sends them: status line, headers, then the body by Content-Length or chunks.
 */
import { createConnection } from "node:net";

export interface RawAnswer {
  status: number;
  /** Header names in lower case; a repeated header's values joined with ", ". */
  headers: Record<string, string>;
  body: Buffer;
}

export interface RawExchange {
  answers: RawAnswer[];
  /** The server closed the connection (or we did, after `expect` answers). */
  closed: boolean;
  /** Bytes after the last complete answer (a torn answer). */
  rest: Buffer;
}

/** One request's bytes: `head` lines are sent as they are (no Host is added). */
export function requestBytes(method: string, target: string, headers: Array<[string, string]>, body?: Buffer | string): Buffer {
  const b = body === undefined ? Buffer.alloc(0) : Buffer.from(body);
  const lines = [`${method} ${target} HTTP/1.1`, ...headers.map(([k, v]) => `${k}: ${v}`)];
  return Buffer.concat([Buffer.from(lines.join("\r\n"), "latin1"), Buffer.from("\r\n\r\n"), b]);
}

/**
 * Sends `bytes` to `url`'s host and port and resolves once `expect` answers arrived, the server
 * closed the connection, or `timeoutMs` passed (whatever was read by then).
 */
export function rawHttp(url: string, bytes: Buffer, options: { expect?: number; timeoutMs?: number; headOnly?: boolean } = {}): Promise<RawExchange> {
  const { hostname, port } = new URL(url);
  const expect = options.expect ?? 1;
  return new Promise((resolve) => {
    const socket = createConnection({ host: hostname, port: Number(port) });
    let buffer = Buffer.alloc(0);
    const answers: RawAnswer[] = [];
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ answers, closed, rest: buffer });
    };
    const timer = setTimeout(() => finish(false), options.timeoutMs ?? 5_000);
    socket.on("connect", () => socket.write(bytes));
    socket.on("data", (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (let answer = parseAnswer(buffer, options.headOnly); answer; answer = parseAnswer(buffer, options.headOnly)) {
        answers.push(answer.answer);
        buffer = buffer.subarray(answer.used);
        if (answers.length >= expect) return finish(true);
      }
    });
    socket.on("error", () => finish(true));
    socket.on("close", () => finish(true));
  });
}

/** The first complete answer in `buf` and how many bytes it took, or null if it is not all there. */
function parseAnswer(buf: Buffer, headOnly = false): { answer: RawAnswer; used: number } | null {
  const end = buf.indexOf("\r\n\r\n");
  if (end < 0) return null;
  const [statusLine, ...lines] = buf.subarray(0, end).toString("latin1").split("\r\n");
  const status = Number(statusLine!.split(" ")[1]);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  let at = end + 4;
  if (headOnly || status === 204 || status === 304 || (status >= 100 && status < 200)) return { answer: { status, headers, body: Buffer.alloc(0) }, used: at };
  if (headers["transfer-encoding"]?.toLowerCase().includes("chunked")) {
    const parts: Buffer[] = [];
    for (;;) {
      const lineEnd = buf.indexOf("\r\n", at);
      if (lineEnd < 0) return null;
      const size = parseInt(buf.subarray(at, lineEnd).toString("latin1"), 16);
      if (buf.length < lineEnd + 2 + size + 2) return null;
      if (size === 0) return { answer: { status, headers, body: Buffer.concat(parts) }, used: lineEnd + 4 };
      parts.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
      at = lineEnd + 2 + size + 2;
    }
  }
  const length = Number(headers["content-length"] ?? 0);
  if (buf.length < at + length) return null;
  return { answer: { status, headers, body: buf.subarray(at, at + length) }, used: at + length };
}
