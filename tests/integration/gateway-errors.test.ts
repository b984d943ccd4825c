/**
 * Bad input through the gateway: each row is a request, the status and error
 * code it must get, and how many events it may publish (none). The platform
 * keeps serving afterwards.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { boot, type Booted } from "../helpers/boot";
import { connectMqtt, type Received, type TestClient } from "../helpers/mqtt";

let p: Booted;
let events: TestClient;

beforeAll(async () => {
  p = await boot({ examples: ["orders", "inventory"] }, { gateway: { maxBodyBytes: 1024 } });
  events = await connectMqtt(p.mqttUrl);
  await events.subscribe("events/#");
});
afterAll(async () => {
  await events?.end();
  await p?.stop();
});

const json = { "content-type": "application/json" };

interface Row {
  name: string;
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
  status: number;
  code: string;
  message?: RegExp;
}

const rows: Row[] = [
  { name: "unknown top-level route", path: "/nope", status: 404, code: "PLT_NOT_FOUND" },
  { name: "unknown service", path: "/api/ghost", status: 404, code: "PLT_SERVICE_NOT_FOUND", message: /ghost/ },
  { name: "unknown route in a service", path: "/api/orders/1/lines", status: 404, code: "PLT_NOT_FOUND" },
  { name: "wrong method", method: "DELETE", path: "/api/orders", status: 405, code: "PLT_METHOD_NOT_ALLOWED", message: /DELETE/ },
  { name: "body without a content type", method: "POST", path: "/api/orders", body: '{"sku":"apple","qty":1}', status: 415, code: "PLT_UNSUPPORTED_MEDIA_TYPE" },
  { name: "empty JSON body", method: "POST", path: "/api/orders", headers: json, body: "", status: 400, code: "PLT_BAD_JSON" },
  { name: "JSON nested too deep", method: "POST", path: "/api/orders", headers: json, body: "[".repeat(500) + "]".repeat(500), status: 400, code: "PLT_BAD_JSON", message: /64 levels/ },
  { name: "malformed JSON", method: "POST", path: "/api/orders", headers: json, body: '{"sku":', status: 400, code: "PLT_BAD_JSON" },
  {
    name: "wrong type",
    method: "POST",
    path: "/api/orders",
    headers: json,
    body: '{"sku":"apple","qty":"two"}',
    status: 400,
    code: "PLT_VALIDATION",
    message: /body\/qty/,
  },
  { name: "missing field", method: "POST", path: "/api/orders", headers: json, body: '{"qty":1}', status: 400, code: "PLT_VALIDATION", message: /body\/sku/ },
  { name: "no body", method: "POST", path: "/api/orders", status: 400, code: "PLT_VALIDATION" },
  { name: "bad path param", path: "/api/orders/abc", status: 400, code: "PLT_VALIDATION", message: /params\/id/ },
  { name: "bad query", path: "/api/orders?limit=0", status: 400, code: "PLT_VALIDATION", message: /query\/limit/ },
  {
    name: "oversized body",
    method: "POST",
    path: "/api/orders",
    headers: json,
    body: JSON.stringify({ sku: "x".repeat(2000), qty: 1 }),
    status: 413,
    code: "PLT_BODY_TOO_LARGE",
  },
  {
    name: "unsupported media type",
    method: "POST",
    path: "/api/orders",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: "sku=apple&qty=1",
    status: 415,
    code: "PLT_UNSUPPORTED_MEDIA_TYPE",
  },
  { name: "plugin's own 404", path: "/api/orders/999999", status: 404, code: "ORDERS_NOT_FOUND" },
  { name: "plugin's own 409", method: "POST", path: "/api/orders", headers: json, body: '{"sku":"kiwi","qty":1}', status: 409, code: "INVENTORY_OUT_OF_STOCK" },
];

/**
 * Places an order and waits for both of its events (orders.created, inventory.reserved): each service
 * publishes its events in the order it committed them, so every event committed before has arrived
 * by then. Returns a test for the order's own events.
 */
async function sentinelOrder(): Promise<(m: Received) => boolean> {
  const order = (await (await p.req("/api/orders", { json: { sku: "apple", qty: 1 } })).json()) as { id: number };
  const left = ((await (await p.req("/api/inventory/apple")).json()) as { qty: number }).qty;
  const created = (m: Received) => m.topic === "events/orders/created" && m.json().data.id === order.id;
  const reserved = (m: Received) => m.topic === "events/inventory/reserved" && m.json().data.sku === "apple" && m.json().data.left === left;
  await events.next(created);
  await events.next(reserved);
  return (m) => created(m) || reserved(m);
}

describe("gateway rejects bad input with a precise JSON error", () => {
  for (const row of rows) {
    test(`${row.name} → ${row.status} ${row.code}`, async () => {
      // Events are counted between two sentinel orders: before the request, after it.
      await sentinelOrder();
      const before = events.received.length;
      const res = await p.req(row.path, { method: row.method ?? "GET", headers: row.headers ?? {}, body: row.body ?? null });
      expect(res.status).toBe(row.status);
      expect(res.headers.get("content-type")).toContain("application/json");
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe(row.code);
      expect(typeof body.error.message).toBe("string");
      if (row.message) expect(body.error.message).toMatch(row.message);
      const sentinel = await sentinelOrder();
      expect(events.received.slice(before).filter((m) => !sentinel(m)).map((m) => m.topic)).toEqual([]);
    });
  }

  test("a chunked body over the limit is cut off with 413", async () => {
    const big = new ReadableStream({
      start(controller) {
        for (let i = 0; i < 8; i++) controller.enqueue(new TextEncoder().encode("x".repeat(512)));
        controller.close();
      },
    });
    const res = await fetch(`${p.url}/api/orders`, { method: "POST", headers: json, body: big });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("PLT_BODY_TOO_LARGE");
  });

  test("still serves after all of it", async () => {
    const res = await p.req("/api/orders", { json: { sku: "apple", qty: 1 } });
    expect(res.status).toBe(201);
  });
});
