/**
 * HTTP/1.1 pipelining (several requests written before the first answer arrives).
 *
 * Bun.serve (1.4.5) closes the connection, with nothing written, when a request's head is parsed
 * while the answer to the one before it is still pending: the per-request callback in uWS's
 * HttpContext.h (packages/bun-uws) checks HTTP_RESPONSE_PENDING and calls us_socket_close, since
 * Bun.serve keeps one HttpResponseData per socket and no queue of parsed requests. A handler whose
 * answer is ready within the microtasks of its call is not affected (the next head is parsed after
 * them); any handler that waits for a timer, I/O or another thread is. The gateway's /api/* answers
 * come from a worker thread, so pipelined /api/* requests get no answer at all. node:http in the same
 * Bun parks a pipelined request until the answer ahead of it is sent (shown below).
 *
 * The gateway has no workaround yet: answering in order needs the gateway to own the HTTP/1.1
 * framing of a connection (node:http, or its own parser on Bun.listen), which costs more than the
 * write and echo paths may lose. The test of the gateway is marked failing; once Bun answers
 * pipelined requests behind an async answer, the test of bare Bun.serve fails and names the version.
 */
import { describe, expect, test } from "bun:test";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { boot } from "../../helpers/boot";
import { openRaw } from "../../helpers/raw-http";

const pipelined = (n: number, request: (i: number) => string) => Array.from({ length: n }, (_, i) => request(i)).join("");
const get = (i: number) => `GET /r${i} HTTP/1.1\r\nHost: plinth.test\r\n\r\n`;

/** Writes `n` pipelined GETs at once; the answers' bodies in order, or how the connection ended. */
async function exchange(port: number, n: number, request = get): Promise<string[] | string> {
  const conn = await openRaw(port);
  try {
    conn.write(pipelined(n, request));
    return (await conn.responses(n, 5_000)).map((r) => r.body);
  } catch (err) {
    return (err as Error).message;
  } finally {
    conn.close();
  }
}

describe("bare Bun.serve", () => {
  test(`an async handler: pipelined requests get no answer and the connection is closed (Bun ${Bun.version})`, async () => {
    using server = Bun.serve({
      port: 0,
      fetch: (req) => new Promise<Response>((resolve) => setTimeout(() => resolve(new Response(new URL(req.url).pathname)), 1)),
    });
    const outcome = await exchange(server.port!, 2);
    // When this fails, Bun (the version in the test's name) answers pipelined requests behind an
    // async answer: check that the gateway's test below passes too, and drop its failing mark.
    expect(outcome, `Bun ${Bun.version} no longer closes a pipelined connection behind an async answer`).toBe("connection closed after 0 of 2 answers (0 bytes unparsed)");
  });

  test("a handler that answers at once: every pipelined request is answered, in order", async () => {
    using server = Bun.serve({ port: 0, fetch: (req) => new Response(new URL(req.url).pathname) });
    expect(await exchange(server.port!, 3)).toEqual(["/r0", "/r1", "/r2"]);
  });
});

test("node:http in the same Bun answers pipelined requests behind async answers, in order", async () => {
  const server = createServer((req, res) => setTimeout(() => res.end(req.url), 1));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    expect(await exchange((server.address() as AddressInfo).port, 3)).toEqual(["/r0", "/r1", "/r2"]);
  } finally {
    server.close();
  }
});

describe("the gateway", () => {
  // Fails today (see the header): no answer to any of them.
  test.failing("answers pipelined /api/* requests, in order", async () => {
    await using p = await boot({
      files: {
        "notes.ts": `import { definePlugin } from "plinth";
export default definePlugin({ name: "notes", version: "1.0.0", migrations: ["CREATE TABLE notes (n INTEGER NOT NULL)"], routes: {
  "POST /": (ctx) => ctx.db.query("INSERT INTO notes (n) VALUES (?) RETURNING n").all(ctx.body.n)[0],
  "GET /count": (ctx) => ctx.db.query("SELECT count(*) AS count FROM notes").get(),
} });
`,
      },
    });
    const port = Number(new URL(p.url).port);
    const post = (i: number) => {
      const body = JSON.stringify({ n: i });
      return `POST /api/notes HTTP/1.1\r\nHost: plinth.test\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    };
    const answers = await exchange(port, 100, post);
    expect(Array.isArray(answers) ? answers.map((a) => (JSON.parse(a) as { n: number }).n) : answers).toEqual(Array.from({ length: 100 }, (_, i) => i));
    // Every acknowledged write is there, and nothing was written that was not acknowledged.
    expect(await (await p.req("/api/notes/count")).json()).toEqual({ count: 100 });
  });
});
