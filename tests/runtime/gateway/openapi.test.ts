/** The OpenAPI 3.1 document of the loaded services' routes, served at /openapi.json, and the docs page. */
import { describe, expect, test } from "bun:test";
import { docsPage, openApiDocument } from "../../../runtime/gateway/openapi";
import { VERSION } from "../../../runtime/version";
import { FakeUpstream, harness } from "./fake-upstream";

const ERROR_REF = { "application/json": { schema: { $ref: "#/components/schemas/Error" } } };
const err = (description: string) => ({ description, content: ERROR_REF });

describe("openApiDocument", () => {
  test("each route an operation under its /api path ({param} for :param), services in name order, without a manifest none", async () => {
    using h = await harness({}, (u) => {
      u.add("zeta", [{ method: "GET", path: "/", auth: "public" }]);
      u.add("alpha", [
        { method: "GET", path: "/items/:id/parts/:part_no", auth: "public" },
        { method: "DELETE", path: "/items/:id", auth: "public" },
      ]);
      u.add("none", [], { manifest: false });
    });
    const doc = openApiDocument(h.upstream, h.config) as { paths: Record<string, Record<string, { operationId: string; tags: string[] }>> };
    expect(Object.keys(doc.paths)).toEqual(["/api/alpha/items/{id}/parts/{part_no}", "/api/alpha/items/{id}", "/api/zeta"]);
    expect(doc.paths["/api/alpha/items/{id}"]!.delete!.operationId).toBe("alpha.delete_items_id");
    expect(doc.paths["/api/zeta"]!.get!.operationId).toBe("zeta.get_");
    expect(doc.paths["/api/zeta"]!.get!.tags).toEqual(["zeta"]);
    expect(doc).toMatchObject({
      openapi: "3.1.0",
      info: { title: "Plinth API", version: VERSION, description: "Routes of every loaded service, served by the Plinth gateway." },
      components: {
        schemas: {
          Error: {
            type: "object",
            properties: { error: { type: "object", properties: { code: { type: "string" }, message: { type: "string" }, data: {} }, required: ["code", "message"] } },
          },
        },
        securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "A JWT, or an API key (plk_…)" }, apiKey: { type: "apiKey", in: "header", name: "X-API-Key" } },
      },
    });
  });

  test("a public route: no security, no 401/403; parameters from the path (strings) and the schemas, required as declared", () => {
    const u = new FakeUpstream();
    u.add("s", [
      {
        method: "GET",
        path: "/items/:id",
        auth: "public",
        summary: "One item",
        schemas: { params: { type: "object", properties: { id: { type: "integer" } } }, query: { type: "object", properties: { q: { type: "string" }, page: { type: "integer" } }, required: ["q"] } },
      },
      { method: "GET", path: "/plain/:name", auth: "public" },
      { method: "GET", path: "/bare", auth: "public" },
      { method: "GET", path: "/search", auth: "public", schemas: { query: { type: "object", properties: { q: { type: "string" } } } } },
    ]);
    const doc = openApiDocument(u, { auth: { defaultPolicy: "authenticated" } } as never) as { paths: Record<string, Record<string, Record<string, unknown>>> };
    expect(doc.paths["/api/s/items/{id}"]!.get).toEqual({
      tags: ["s"],
      operationId: "s.get_items_id",
      summary: "One item",
      security: [],
      parameters: [
        { name: "id", in: "path", required: true, schema: { type: "integer" } },
        { name: "q", in: "query", required: true, schema: { type: "string" } },
        { name: "page", in: "query", required: false, schema: { type: "integer" } },
      ],
      responses: { "200": { description: "OK" }, "400": err("Invalid input (PLT_VALIDATION names the paths)") },
    });
    expect(doc.paths["/api/s/plain/{name}"]!.get!.parameters).toEqual([{ name: "name", in: "path", required: true, schema: { type: "string" } }]);
    expect(doc.paths["/api/s/bare"]!.get).toEqual({ tags: ["s"], operationId: "s.get_bare", security: [], responses: { "200": { description: "OK" } } });
    // A query schema without `required`: every parameter optional.
    expect(doc.paths["/api/s/search"]!.get!.parameters).toEqual([{ name: "q", in: "query", required: false, schema: { type: "string" } }]);
  });

  test("a protected route: bearer or API key, 401/403, roles as x-roles; a body schema and a rate limit are described; the default policy applies", () => {
    const u = new FakeUpstream();
    u.add("s", [
      { method: "POST", path: "/orders", auth: ["admin", "ops"], rateLimit: { limit: 1, windowMs: 1_000 }, schemas: { body: { type: "object" } } },
      { method: "GET", path: "/orders" },
    ]);
    const doc = openApiDocument(u, { auth: { defaultPolicy: "authenticated" } } as never) as { paths: Record<string, Record<string, Record<string, unknown>>> };
    expect(doc.paths["/api/s/orders"]!.post).toEqual({
      tags: ["s"],
      operationId: "s.post_orders",
      security: [{ bearer: [] }, { apiKey: [] }],
      "x-roles": ["admin", "ops"],
      requestBody: { required: true, content: { "application/json": { schema: { type: "object" } } } },
      responses: {
        "200": { description: "OK" },
        "400": err("Invalid input (PLT_VALIDATION names the paths)"),
        "401": err("Missing or invalid credentials"),
        "403": err("Role not allowed"),
        "429": err("Rate limited"),
      },
    });
    expect(doc.paths["/api/s/orders"]!.get!.security).toEqual([{ bearer: [] }, { apiKey: [] }]);
    expect(doc.paths["/api/s/orders"]!.get!["x-roles"]).toBeUndefined();
    const open = openApiDocument(u, { auth: { defaultPolicy: "public" } } as never) as { paths: Record<string, Record<string, Record<string, unknown>>> };
    expect(open.paths["/api/s/orders"]!.get!.security).toEqual([]);
  });
});

describe("docsPage", () => {
  test("an HTML page that loads the document it is given", async () => {
    const page = docsPage("/openapi.json");
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const html = await page.text();
    expect(html).toContain("/openapi.json");
    expect(html).toContain("Plinth API");
    expect(html).toContain("https://cdn.jsdelivr.net/npm/@scalar/api-reference@1/dist/browser/standalone.min.js");
  });
});
