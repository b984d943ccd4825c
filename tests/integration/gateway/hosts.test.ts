/**
 * Requests whose Host or target cannot make a URL, over a raw socket (fetch normalizes Host): each
 * gets a precise 400 JSON error, never Bun's development error page (HTML with source lines and
 * paths); and a short Host (1–3 characters) reaches /health, /openapi.json and /docs.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Elysia } from "elysia";
import { boot, type Booted } from "../../helpers/boot";
import { rawRequest, type RawResponse } from "../../helpers/raw-http";

let p: Booted;
let port: number;

beforeAll(async () => {
  p = await boot({ examples: ["orders", "inventory"] });
  port = Number(new URL(p.url).port);
});
afterAll(() => p?.stop());

const get = (path: string, host: string, method = "GET") => rawRequest(port, Buffer.from(`${method} ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`, "utf8"));

function expectJsonError(res: RawResponse, status: number, code: string): { code: string; message: string } {
  // Nothing of the server's own: no HTML page, no file path, no working directory, no stack.
  expect(res.body).not.toContain("<");
  expect(res.body).not.toContain(process.cwd());
  expect(res.body).not.toMatch(/\.ts\b|    at /);
  expect(res.status).toBe(status);
  expect(res.headers["content-type"]).toContain("application/json");
  const { error } = JSON.parse(res.body) as { error: { code: string; message: string } };
  expect(error.code).toBe(code);
  return error;
}

describe("a Host that cannot make a URL → 400 PLT_BAD_REQUEST, on every path", () => {
  const hosts: Array<[string, string, RegExp]> = [
    ["empty", "", /empty Host/],
    ["with /", "a/b", /invalid Host header "a\/b"/],
    ["with ?", "a?b", /invalid Host header "a\?b"/],
    ["with #", "a#b", /invalid Host header "a#b"/],
    ["with @", "user@a", /invalid Host header "user@a"/],
    ["with a space", "a b", /invalid Host header "a b"/],
    ["with non-ASCII bytes", "h\u00e9te", /invalid Host header "h\\u00c3\\u00a9te"/],
  ];
  for (const [name, host, message] of hosts) {
    test(`${name}`, async () => {
      for (const path of ["/nope", "/health", "/api/orders", "/api/orders/1", "/docs"]) {
        expect(expectJsonError(await get(path, host), 400, "PLT_BAD_REQUEST").message).toMatch(message);
      }
    });
  }

  test("a host of 5,000 characters is named shortened", async () => {
    const error = expectJsonError(await get("/api/orders", `${"a/".repeat(2500)}`), 400, "PLT_BAD_REQUEST");
    expect(error.message.length).toBeLessThan(250);
  });

  test("CONNECT host:port → 400 (not a proxy)", async () => {
    const res = await rawRequest(port, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    expect(expectJsonError(res, 400, "PLT_BAD_REQUEST").message).toContain("CONNECT");
  });

  test("an unparsable bracketed Host on a path Elysia serves", async () => {
    expect(expectJsonError(await get("/nope", "[::1"), 400, "PLT_BAD_REQUEST").message).toContain("[::1");
  });
});

describe("a short Host (1–3 characters)", () => {
  for (const host of ["x", "ab", "a:1", "xyz"]) {
    test(`${host}: /health, /openapi.json, /docs and /api answer`, async () => {
      const health = await get("/health", host);
      expect(health.status).toBe(200);
      expect(JSON.parse(health.body).status).toBeDefined();
      const doc = await get("/openapi.json", host);
      expect(doc.status).toBe(200);
      expect(JSON.parse(doc.body).paths["/api/orders"]).toBeDefined();
      expect((await get("/docs", host)).status).toBe(200);
      expect((await get("/api/orders", host)).status).toBe(200);
      expectJsonError(await get("/nope", host), 404, "PLT_NOT_FOUND");
    });
  }
});

test("with CORS on (every request through Elysia): a short Host reaches /health and /api; a bad one gets 400", async () => {
  await using q = await boot({ examples: ["orders", "inventory"] }, { gateway: { cors: { origins: ["*"] } } });
  const qport = Number(new URL(q.url).port);
  const at = (path: string, host: string) => rawRequest(qport, `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nOrigin: http://o.test\r\n\r\n`);
  for (const path of ["/health", "/api/orders", "/openapi.json"]) {
    const res = await at(path, "x");
    expect(res.status).toBe(200);
    expect(res.headers["access-control-allow-origin"]).toBeDefined();
  }
  expectJsonError(await at("/api/orders", "a/b"), 400, "PLT_BAD_REQUEST");
});

test("Elysia, as configured by default, does not find a route when the Host is under 4 characters (the gateway sets handler.standardHostname: false; drop that once this fails)", async () => {
  const app = new Elysia().get("/health", () => "ok");
  expect((await app.handle(new Request("http://abcd/health"))).status).toBe(200);
  expect((await app.handle(new Request("http://x/health"))).status).toBe(404);
  const fixed = new Elysia({ handler: { standardHostname: false } }).get("/health", () => "ok");
  expect((await fixed.handle(new Request("http://x/health"))).status).toBe(200);
});

test("the platform still serves", async () => {
  expect((await p.req("/api/orders", { json: { sku: "apple", qty: 1 } })).status).toBe(201);
});
