/**
 * HTTP as clients expect it at the gateway's edge: 405 with Allow for a known path and another
 * method, HEAD with the GET's Content-Length, and bodies held to their declared media type (415 for
 * no Content-Type where the route declares a body; 400 for an empty or BOM-only JSON body).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { boot, type Booted } from "../../helpers/boot";
import { rawRequest } from "../../helpers/raw-http";

let p: Booted;
let port: number;

const plugin = `import { definePlugin, route, t } from "plinth";
export default definePlugin({ name: "sem", version: "1.0.0", routes: {
  "GET /items/:id": (ctx) => ({ id: ctx.params.id, text: "héllo wörld" }),
  "PUT /items/:id": route({ body: t.Object({ v: t.Number() }), handler: (ctx) => ({ put: ctx.body }) }),
  "DELETE /items/:id": () => undefined,
  "POST /free": (ctx) => ({ got: ctx.body ?? "nothing" }),
} });
`;

beforeAll(async () => {
  p = await boot({ files: { "sem.ts": plugin } });
  port = Number(new URL(p.url).port);
});
afterAll(() => p?.stop());

const errorOf = async (res: Response) => ((await res.json()) as { error: { code: string; message: string } }).error;

describe("405 Method Not Allowed", () => {
  test("a known path with another method → 405 PLT_METHOD_NOT_ALLOWED with Allow", async () => {
    const res = await p.req("/api/sem/items/1", { method: "POST" });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("GET, HEAD, PUT, DELETE");
    const error = await errorOf(res);
    expect(error.code).toBe("PLT_METHOD_NOT_ALLOWED");
    expect(error.message).toContain("POST");
  });

  test("a path no route has is still 404", async () => {
    const res = await p.req("/api/sem/nothing/here", { method: "POST" });
    expect(res.status).toBe(404);
    expect((await errorOf(res)).code).toBe("PLT_NOT_FOUND");
    expect(res.headers.get("allow")).toBeNull();
  });

  test("Allow without GET has no HEAD", async () => {
    const res = await p.req("/api/sem/free", { method: "PATCH" });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("POST");
  });
});

test("HEAD answers the GET's Content-Length, without a body", async () => {
  const get = await rawRequest(port, "GET /api/sem/items/7 HTTP/1.1\r\nHost: plinth.test\r\n\r\n");
  const length = Number(get.headers["content-length"]);
  expect(length).toBe(Buffer.byteLength(get.body));
  expect(length).toBeGreaterThan(0);
  const head = await rawRequest(port, "HEAD /api/sem/items/7 HTTP/1.1\r\nHost: plinth.test\r\n\r\n");
  expect(head.status).toBe(200);
  expect(head.headers["content-length"]).toBe(String(length));
  expect(head.body).toBe("");
});

describe("bodies and their media type", () => {
  test("no Content-Type on a route that declares a body → 415", async () => {
    const res = await p.req("/api/sem/items/1", { method: "PUT", body: new TextEncoder().encode(`{"v":1}`) });
    expect(res.status).toBe(415);
    expect((await errorOf(res)).code).toBe("PLT_UNSUPPORTED_MEDIA_TYPE");
    const ok = await p.req("/api/sem/items/1", { method: "PUT", json: { v: 1 } });
    expect(await ok.json()).toEqual({ put: { v: 1 } });
  });

  test.each([
    ["empty", ""],
    ["a byte-order mark alone", "\uFEFF"],
  ])("an application/json body that is %s → 400 PLT_BAD_JSON, also where the route declares no body", async (_, body) => {
    for (const path of ["/api/sem/free", "/api/sem/items/1"]) {
      const res = await p.req(path, { method: path.endsWith("free") ? "POST" : "PUT", headers: { "content-type": "application/json" }, body });
      expect(res.status).toBe(400);
      expect((await errorOf(res)).code).toBe("PLT_BAD_JSON");
    }
  });

  test("no body and no Content-Type on a route without a body schema is no body", async () => {
    expect(await (await p.req("/api/sem/free", { method: "POST" })).json()).toEqual({ got: "nothing" });
  });
});
