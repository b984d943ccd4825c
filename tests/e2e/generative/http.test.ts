/**
 * Generated hostile HTTP against the compiled binary: methods, request targets, Host values,
 * headers and bodies (deep nesting, huge arrays, odd Unicode, numbers at the edges, bytes that
 * are not JSON), sent byte for byte over a raw socket. The property for every request: an HTTP
 * answer arrives, an error answer is the JSON error body with no stack, source or file path in
 * it, the process is still up; and at the end every order answered 201 is still there.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { OPEN_AUTH, startBinary, type Running } from "../../helpers/binary";
import { writePlugins } from "../../helpers/plugins";
import { checkProperty, fc } from "../../helpers/property";
import { rawHttp, requestBytes } from "../../helpers/raw-http";
import { tempDir } from "../../helpers/tmp";
import { leaks } from "../../helpers/leaks";

const REQUEST_TIMEOUT_MS = 2_000;
const MAX_BODY = 256 * 1024;

const dir = tempDir("plinth-gen-http");
let app: Running;
let hostPort: string;

beforeAll(async () => {
  writePlugins(dir.join("plugins"), { examples: ["orders", "inventory", "notifications"] });
  writeFileSync(
    dir.join("platform.config.ts"),
    `export default { ${OPEN_AUTH}, gateway: { requestTimeoutMs: ${REQUEST_TIMEOUT_MS}, maxBodyBytes: ${MAX_BODY} } };\n`,
  );
  app = await startBinary(dir.path, ["--no-watch"]);
  hostPort = new URL(app.url).host;
});
afterAll(async () => {
  await app?.stop("SIGKILL");
  dir[Symbol.dispose]();
});

// ——— generators ———

/** Methods Bun's HTTP parser knows; it closes the connection on any other (see UNKNOWN_METHOD below). */
const KNOWN_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT", "PROPFIND", "PURGE", "QUERY", "SEARCH", "LOCK", "MKCOL"];
const method = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS") },
  { weight: 1, arbitrary: fc.constantFrom(...KNOWN_METHODS) },
  { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z!#$%&'*+.^_`|~-]{1,12}$/) },
);

/** A path segment: words, dots, percent-escapes valid and not, encoded Unicode. */
const segment = fc.oneof(
  fc.constantFrom("orders", "inventory", "notifications", "platform", "auth", "me", "services", "1", "0", "-1", "99999999999999999999", "apple"),
  fc.constantFrom("", ".", "..", "%00", "%ZZ", "%", "%2F", "%2e%2e", "%C0%AF", "%F0%9F%92%A9", "%ED%A0%80", ":id", "*", "%0D%0A"),
  fc.stringMatching(/^[A-Za-z0-9._~!$&'()*+,;=:@-]{0,20}$/),
  fc.string({ unit: "binary", maxLength: 8 }).map((s) => encodeURIComponent(s.replace(/[\ud800-\udfff]/g, "x"))),
);

const target = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom("/health", "/openapi.json", "/docs", "/api/orders", "/api/orders/1", "/api/inventory", "/api/inventory/apple", "/api/notifications", "/api/platform/services", "/api/auth/me", "/mqtt", "/", "/api/", "/api") },
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom("/api/", "/"), fc.array(segment, { maxLength: 6 })).map(([p, s]) => p + s.join("/")) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom("/api/orders", "/api/inventory", "/health"), fc.stringMatching(/^[A-Za-z0-9=&%._~+-]{0,40}$/)).map(([p, q]) => `${p}?${q}`) },
  { weight: 1, arbitrary: fc.constantFrom("*", "http://x/api/orders", "//api/orders", "/api/orders/%2e%2e/inventory", "/api//orders") },
  { weight: 1, arbitrary: fc.integer({ min: 100, max: 6_000 }).map((n) => "/api/orders/" + "a/".repeat(n)) },
);

/** A header value as HTTP allows it: visible ASCII, spaces and tabs, and bytes 0x80–0xFF (sent as latin1). */
const fieldValue = (maxLength: number) => fc.stringMatching(new RegExp(`^[\\x20-\\x7e\\t\\x80-\\xff]{0,${maxLength}}$`));

const host = fc.oneof(
  { weight: 4, arbitrary: fc.constant<string | null | undefined>(null) }, // the real host:port
  { weight: 1, arbitrary: fc.constant<string | null | undefined>(undefined) }, // no Host header
  { weight: 3, arbitrary: fc.constantFrom("", "x", "ab", "a/b", "a?b", "a#b", "u@h", "[::1]", "[", "h:99999", "h:-1", "ex ample", "localhost:0") },
  { weight: 1, arbitrary: fieldValue(30) },
  { weight: 1, arbitrary: fc.constantFrom("\xe9xample", "\xff\xfe", "h\x80st") },
  { weight: 1, arbitrary: fc.integer({ min: 200, max: 4_000 }).map((n) => "h".repeat(n)) },
);

const contentType = fc.constantFrom(
  "application/json",
  "application/json; charset=utf-8",
  "application/json; charset=utf-16",
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data",
  "application/octet-stream",
  "APPLICATION/JSON",
  "application/json;;",
  "",
  null,
);

/** JSON nested `depth` levels, as text: arrays or objects. */
const deep = fc.tuple(fc.integer({ min: 1, max: 100_000 }), fc.constantFrom("[", '{"a":')).map(([depth, open]) =>
  open === "[" ? "[".repeat(depth) + "]".repeat(depth) : '{"a":'.repeat(depth) + "1" + "}".repeat(depth),
);

const body = fc.oneof(
  { weight: 3, arbitrary: fc.record({ sku: fc.constantFrom("apple", "pear", "plum", "kiwi", ""), qty: fc.oneof(fc.integer({ min: -2, max: 5 }), fc.double()) }).map((o) => JSON.stringify(o)) },
  { weight: 3, arbitrary: deep },
  { weight: 2, arbitrary: fc.json({ maxDepth: 6 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1_000, max: 120_000 }).map((n) => `[${"0,".repeat(n)}0]`) },
  { weight: 1, arbitrary: fc.constantFrom("1e999", "-0", "9007199254740993", "1e-400", "0.1e-99999", '{"sku":"apple","qty":1e308}', '{"qty":-0,"sku":"apple"}', '"\\ud800"', '{"sku":"\\udfff\\ud800","qty":1}', '{"__proto__":{"x":1},"sku":"apple","qty":1}', '{"sku":"apple","qty":1,"sku":"pear"}') },
  { weight: 1, arbitrary: fc.constantFrom("", "\ufeff", "\ufeff{}", " ", "null", "{", "}", "[1,]", "{'a':1}", "NaN", "\u0000") },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b).toString("latin1")) },
  { weight: 2, arbitrary: fc.constant<string | null>(null) },
);

const extraHeaders = fc.array(
  fc.oneof(
    fc.tuple(fc.constantFrom("x-api-key", "authorization", "accept", "if-none-match", "accept-encoding", "cookie", "x-forwarded-for", "origin", "expect", "connection", "upgrade"), fc.stringMatching(/^[\x20-\x7e]{0,60}$/)),
    fc.tuple(fc.constant("authorization"), fc.constantFrom("Bearer ", "Bearer a.b.c", "Bearer eyJhbGciOiJub25lIn0.e30.", "Basic !!!", "Bearer " + "a".repeat(5000))),
    fc.tuple(fc.stringMatching(/^[A-Za-z0-9-]{1,20}$/), fieldValue(40)),
  ),
  { maxLength: 4 },
);

interface Sent {
  method: string;
  target: string;
  /** null: the server's own host:port; undefined: no Host header. */
  host: string | null | undefined;
  contentType: string | null;
  body: string | null;
  headers: Array<[string, string]>;
}

const request = fc.record<Sent>({ method, target, host, contentType, body, headers: extraHeaders });

/**
 * Requests Bun's HTTP parser answers itself: an unknown method, "*" as the target (Bun takes it for
 * OPTIONS alone, and answers that itself), no Host header (RFC 9112 §3.2: a 400), and a request line
 * and headers over its 16 KiB limit (431).
 */
function refusedByParser(r: Sent, sent: Buffer): boolean {
  const head = sent.indexOf("\r\n\r\n");
  return !KNOWN_METHODS.includes(r.method) || r.target === "*" || r.host === undefined || head > 16 * 1024;
}

function bytesOf(r: Sent): Buffer {
  const headers: Array<[string, string]> = [];
  if (r.host !== undefined) headers.push(["Host", r.host ?? hostPort]);
  const body = r.body === null ? undefined : Buffer.from(r.body, r.body.startsWith("\xff") ? "latin1" : "utf8");
  if (body !== undefined && r.contentType !== null) headers.push(["Content-Type", r.contentType]);
  // Framing is never in question here: one request, its length correct, then the connection closes.
  for (const h of r.headers) if (!/^(content-length|transfer-encoding|connection|expect|upgrade)$/i.test(h[0])) headers.push(h);
  if (body !== undefined) headers.push(["Content-Length", String(body.length)]);
  headers.push(["Connection", "close"]);
  return requestBytes(r.method, r.target, headers, body);
}

test("generated requests: each gets an answer with a JSON error or a normal body, no leak, the process stays up, 201s are kept", async () => {
  const created: Array<{ id: number; sku: string }> = [];
  const runs = await checkProperty("http", { runs: 2_000, ms: 20_000 }, [request], async (r) => {
    const sent = bytesOf(r);
    const { answers } = await rawHttp(app.url, sent, { timeoutMs: REQUEST_TIMEOUT_MS + 4_000, headOnly: r.method === "HEAD" });
    expect(app.proc.exitCode, `the process exited; log:\n${app.log().slice(-3000)}`).toBeNull();
    // Bun's parser answers some requests itself, before the gateway sees them: an empty 400 (or 431
    // for a head over its limit), or the connection closed. Nothing of the server's is in it.
    const bare = answers.length === 0 || (answers[0]!.body.length === 0 && !answers[0]!.headers["content-type"] && [400, 431].includes(answers[0]!.status));
    if (bare) {
      expect(refusedByParser(r, sent), `only a request Bun's parser refuses gets a bare answer: ${JSON.stringify(answers[0] ?? "none")}`).toBe(true);
      return;
    }
    expect(answers.length, "an HTTP answer").toBe(1);
    const { status, headers, body } = answers[0]!;
    expect(status).toBeGreaterThanOrEqual(200);
    expect(status).toBeLessThan(600);
    const text = body;
    const answer = `${status} ${JSON.stringify(headers)} ${text.slice(0, 300)}`;
    if (status >= 400 && r.method !== "HEAD") {
      expect(leaks(text, sent.toString("latin1")), `no stack, source or file path in: ${answer}`).toBeNull();
      expect(headers["content-type"] ?? "", `a JSON error: ${answer}`).toContain("application/json");
      const error = (JSON.parse(text) as { error: { code: unknown; message: unknown } }).error;
      expect(String(error.code)).toMatch(/^[A-Z][A-Z0-9_]+$/);
      expect(typeof error.message).toBe("string");
    }
    if (status === 201 && r.method === "POST" && r.target === "/api/orders") {
      const order = JSON.parse(text) as { id: number; sku: string };
      created.push({ id: order.id, sku: order.sku });
    }
  });
  expect(runs).toBeGreaterThan(20);
  // Every acknowledged order is there.
  for (const { id, sku } of created) {
    const res = await fetch(`${app.url}/api/orders/${id}`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { sku: string }).sku).toBe(sku);
  }
  const health = await fetch(`${app.url}/health`);
  expect(health.status).toBe(200);
}, 60_000);
