/**
 * A JSON body nested deeper than `gateway.maxJsonDepth` is refused at the gateway (400 PLT_BAD_JSON
 * naming the limit) before anything walks it recursively: 50,000 levels of `[` used to overflow the
 * stack where the request is encoded for the worker, and stop the process.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { boot, type Booted } from "../../helpers/boot";

let p: Booted;
const json = { "content-type": "application/json" };

beforeAll(async () => {
  p = await boot({
    examples: ["orders", "inventory"],
    // A route without a body schema: the body reaches the worker as it is.
    files: { "echo.ts": `import { definePlugin } from "plinth";\nexport default definePlugin({ name: "echo", version: "1.0.0", routes: { "POST /": (ctx) => ({ got: ctx.body }) } });\n` },
  });
});
afterAll(() => p?.stop());

const deepArrays = (n: number) => "[".repeat(n) + "]".repeat(n);
const deepObjects = (n: number) => '{"a":'.repeat(n) + "1" + "}".repeat(n);

async function expectRefused(path: string, body: string, limit: number, headers: Record<string, string> = json) {
  const res = await p.req(path, { method: "POST", headers, body });
  expect(res.status).toBe(400);
  const { error } = (await res.json()) as { error: { code: string; message: string; data: unknown } };
  expect(error.code).toBe("PLT_BAD_JSON");
  expect(error.message).toContain(`${limit} levels (gateway.maxJsonDepth)`);
  expect(error.data).toEqual({ maxJsonDepth: limit });
}

describe("deep JSON bodies", () => {
  test.each([
    ["50,000 [ then 50,000 ]", deepArrays(50_000)],
    ['50,000 levels of {"a":', deepObjects(50_000)],
    ["40,000 [ then 40,000 ]", deepArrays(40_000)],
  ])("%s → 400 PLT_BAD_JSON naming the limit, on routes with and without a body schema", async (_, body) => {
    await expectRefused("/api/orders", body, 64);
    await expectRefused("/api/echo", body, 64);
    // No content type on a route without a body schema: still read as JSON, still bounded.
    await expectRefused("/api/echo", body, 64, {});
  });

  test("64 levels pass (the default limit), 65 do not", async () => {
    const res = await p.req("/api/echo", { method: "POST", headers: json, body: deepArrays(64) });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ got: JSON.parse(deepArrays(64)) });
    await expectRefused("/api/echo", deepArrays(65), 64);
  });

  test("the platform still serves", async () => {
    const res = await p.req("/api/orders", { json: { sku: "apple", qty: 1 } });
    expect(res.status).toBe(201);
  });
});

test("gateway.maxJsonDepth sets the limit", async () => {
  await using q = await boot(
    { files: { "echo.ts": `import { definePlugin } from "plinth";\nexport default definePlugin({ name: "echo", version: "1.0.0", routes: { "POST /": (ctx) => ({ got: ctx.body }) } });\n` } },
    { gateway: { maxJsonDepth: 3 } },
  );
  const post = (body: string) => q.req("/api/echo", { method: "POST", headers: json, body });
  expect((await post('{"a":[[1]]}')).status).toBe(200);
  const res = await post('{"a":[[[1]]]}');
  expect(res.status).toBe(400);
  expect(((await res.json()) as { error: { message: string } }).error.message).toContain("3 levels");
});

test("with CORS on (every request through Elysia): the same limit, and Elysia's own routes never parse a body", async () => {
  await using q = await boot(
    { files: { "echo.ts": `import { definePlugin } from "plinth";\nexport default definePlugin({ name: "echo", version: "1.0.0", routes: { "POST /": (ctx) => ({ got: ctx.body }) } });\n` } },
    { gateway: { cors: { origins: ["*"] } } },
  );
  const deep = deepArrays(50_000);
  const res = await q.req("/api/echo", { method: "POST", headers: json, body: deep });
  expect(res.status).toBe(400);
  expect(((await res.json()) as { error: { code: string } }).error.code).toBe("PLT_BAD_JSON");
  for (const path of ["/health", "/nope", "/openapi.json"]) {
    const other = await q.req(path, { method: "POST", headers: json, body: deep });
    expect(other.status).toBe(404);
    expect(((await other.json()) as { error: { code: string } }).error.code).toBe("PLT_NOT_FOUND");
  }
  expect((await q.req("/health")).status).toBe(200);
});
