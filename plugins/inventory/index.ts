/**
 * inventory: keeps stock per SKU in its own database and lets other services
 * reserve it. Called by `orders` through `ctx.call("inventory.reserve", ...)`.
 */
import { action, definePlugin, PlinthError, route, t } from "plinth";

export default definePlugin({
  name: "inventory",
  version: "1.0.0",
  description: "Stock levels; other services reserve stock through the `reserve` action.",

  // Each string runs once, in order, in its own transaction. Only ever append.
  migrations: [
    `CREATE TABLE stock (sku TEXT PRIMARY KEY, qty INTEGER NOT NULL CHECK (qty >= 0))`,
    `INSERT INTO stock (sku, qty) VALUES ('apple', 1000000), ('pear', 500000), ('plum', 10)`,
  ],

  routes: {
    // GET /api/inventory → every SKU and its stock
    "GET /": (ctx) => ctx.db.query("SELECT sku, qty FROM stock ORDER BY sku").all(),

    // GET /api/inventory/apple → one SKU, or 404 with a JSON error
    "GET /:sku": route({
      params: t.Object({ sku: t.String() }),
      handler(ctx) {
        const row = ctx.db.query("SELECT sku, qty FROM stock WHERE sku = ?").get(ctx.params.sku);
        if (!row) throw new PlinthError("INVENTORY_UNKNOWN_SKU", `no such SKU: ${ctx.params.sku}`, { status: 404 });
        return row;
      },
    }),
  },

  actions: {
    // ctx.call("inventory.reserve", { sku, qty }) from any service
    reserve: action({
      params: t.Object({ sku: t.String({ minLength: 1 }), qty: t.Integer({ minimum: 1 }) }),
      handler(ctx) {
        const { sku, qty } = ctx.params;
        const row = ctx.db
          .query("UPDATE stock SET qty = qty - ? WHERE sku = ? AND qty >= ? RETURNING qty")
          .get(qty, sku, qty) as { qty: number } | null;
        if (!row) {
          // A 4xx is the caller's problem: it never counts against this service's circuit breaker.
          throw new PlinthError("INVENTORY_OUT_OF_STOCK", `not enough ${sku} in stock for ${qty}`, { status: 409 });
        }
        ctx.emit("reserved", { sku, qty, left: row.qty });
        return { sku, reserved: qty, left: row.qty };
      },
    }),
  },
});
