/**
 * The example scenario, in process: POST /api/orders → inventory.reserve in
 * another worker → order stored → orders event on MQTT (TCP and WebSocket) →
 * notifications records it in its own database.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { join } from "node:path";
import { boot, type Booted } from "../helpers/boot";
import { connectMqtt, eventually, type TestClient } from "../helpers/mqtt";

let p: Booted;
let tcp: TestClient;
let ws: TestClient;

beforeAll(async () => {
  p = await boot({ examples: ["orders", "inventory", "notifications"] });
  tcp = await connectMqtt(p.mqttUrl);
  ws = await connectMqtt(p.wsUrl);
  await tcp.subscribe("events/#");
  await ws.subscribe("events/orders/+");
});

afterAll(async () => {
  await tcp?.end();
  await ws?.end();
  await p?.stop();
});

describe("POST /api/orders", () => {
  test("creates the order, reserves stock, publishes the event and notifies", async () => {
    const before = (await (await p.req("/api/inventory/apple")).json()) as { qty: number };

    const res = await p.req("/api/orders", { json: { sku: "apple", qty: 2 } });
    expect(res.status).toBe(201);
    expect(res.headers.get("content-type")).toContain("application/json");
    const order = (await res.json()) as { id: number; sku: string; qty: number };
    expect(order).toMatchObject({ sku: "apple", qty: 2 });
    expect(order.id).toBeGreaterThan(0);

    const after = (await (await p.req("/api/inventory/apple")).json()) as { qty: number };
    expect(after.qty).toBe(before.qty - 2);

    const isOrder = (m: { topic: string; json(): any }) => m.topic === "events/orders/created" && m.json().data.id === order.id;
    const viaTcp = await tcp.next(isOrder);
    const event = viaTcp.json();
    expect(event).toMatchObject({
      specversion: "1.0",
      source: "plinth/orders",
      type: "orders.created",
      datacontenttype: "application/json",
      data: { id: order.id, sku: "apple", qty: 2 },
    });
    expect(typeof event.id).toBe("string");
    expect(Number.isNaN(Date.parse(event.time))).toBe(false);
    expect((await ws.next(isOrder)).json().id).toBe(event.id);
    // inventory emitted its own event in its own namespace (this reservation's: what it left is what is left now)
    const reserved = (m: { topic: string; json(): any }) => m.topic === "events/inventory/reserved" && m.json().data.sku === "apple" && m.json().data.left === after.qty;
    expect((await tcp.next(reserved)).json().data).toMatchObject({ sku: "apple", qty: 2 });

    const notes = await eventually(async () => {
      const list = (await (await p.req("/api/notifications")).json()) as Array<{ event_id: string; message: string }>;
      return list.find((n) => n.event_id === event.id);
    });
    expect(notes.message).toBe(`order ${order.id}: 2 × apple`);

    expect(await (await p.req(`/api/orders/${order.id}`)).json()).toMatchObject({ id: order.id, sku: "apple" });
  });

  test("each service keeps its own SQLite file", async () => {
    const order = (await (await p.req("/api/orders", { json: { sku: "pear", qty: 1 } })).json()) as { id: number };
    const db = new Database(join(p.dataDir, "orders.sqlite"), { readonly: true });
    try {
      expect(db.query("SELECT sku FROM orders WHERE id = ?").get(order.id)).toEqual({ sku: "pear" });
      expect((db.query("PRAGMA journal_mode").get() as { journal_mode: string }).journal_mode).toBe("wal");
      expect(db.query("SELECT name FROM sqlite_master WHERE name = 'stock'").get()).toBeNull();
    } finally {
      db.close();
    }
  });

  test("out of stock is the caller's 409, no order and no event", async () => {
    const res = await p.req("/api/orders", { json: { sku: "plum", qty: 11 } });
    expect(res.status).toBe(409);
    expect(await res.json()).toEqual({ error: { code: "INVENTORY_OUT_OF_STOCK", message: "not enough plum in stock for 11" } });
    // Each service publishes its events in the order it committed them: once both events of an order
    // placed after this one arrive, a plum event of either service would have.
    const after = (await (await p.req("/api/orders", { json: { sku: "pear", qty: 1 } })).json()) as { id: number };
    await tcp.next((m) => m.topic === "events/orders/created" && m.json().data.id === after.id);
    const left = ((await (await p.req("/api/inventory/pear")).json()) as { qty: number }).qty;
    await tcp.next((m) => m.topic === "events/inventory/reserved" && m.json().data.sku === "pear" && m.json().data.left === left);
    // (plum is ordered nowhere else in this file: a plum event could only be this request's)
    expect(tcp.received.filter((m) => m.json().data?.sku === "plum")).toHaveLength(0);
  });

  test("GET /health reports every service ready", async () => {
    const res = await p.req("/health");
    expect(res.status).toBe(200);
    const health = (await res.json()) as { status: string; services: Record<string, { state: string; breaker: string }> };
    expect(health.status).toBe("ok");
    for (const name of ["platform", "orders", "inventory", "notifications"]) {
      expect(health.services[name]).toMatchObject({ state: "ready", breaker: "closed" });
    }
  });

  test("the built-in platform service lists services and breakers", async () => {
    const res = await p.req("/api/platform/services");
    expect(res.status).toBe(200);
    const body = (await res.json()) as { services: Array<{ name: string; routes: string[]; actions: string[] }> };
    const inventory = body.services.find((s) => s.name === "inventory");
    expect(inventory?.actions).toEqual(["reserve"]);
    expect(inventory?.routes).toContain("GET /api/inventory/:sku");
    // A breaker exists once its service was called: this test calls it, not only the tests before it.
    expect((await p.req("/api/inventory/apple")).status).toBe(200);
    const breakers = (await (await p.req("/api/platform/breakers")).json()) as Record<string, { state: string }>;
    expect(breakers.inventory?.state).toBe("closed");
  });
});
