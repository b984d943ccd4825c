/**
 * orders: POST /api/orders reserves stock in `inventory` (another service, in
 * another worker, through a circuit breaker), stores the order in this
 * service's own database and publishes an `orders` event.
 */
import { definePlugin, PlinthError, route, t } from "plinth";

interface Order {
  id: number;
  sku: string;
  qty: number;
  created_at: string;
}

export default definePlugin({
  name: "orders",
  version: "1.0.0",
  description: "Takes orders; reserves stock in inventory and emits orders/created.",
  needs: ["inventory"],

  migrations: [
    `CREATE TABLE orders (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      sku TEXT NOT NULL,
      qty INTEGER NOT NULL,
      created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    )`,
  ],

  routes: {
    // POST /api/orders {"sku":"apple","qty":2} → 201 with the order
    "POST /": route({
      // Validated before the handler runs: a wrong type answers 400 naming the field.
      body: t.Object({ sku: t.String({ minLength: 1 }), qty: t.Integer({ minimum: 1 }) }),
      async handler(ctx) {
        const { sku, qty } = ctx.body;
        // Cross-service call: a typed PlinthError comes back if inventory refuses, times out or its breaker is open.
        await ctx.call("inventory.reserve", { sku, qty });
        // The order and its event commit together (transactional outbox): the event is
        // published after the commit, and again after a crash if it was not yet.
        const order = ctx.tx(() => {
          const row = ctx.db.query("INSERT INTO orders (sku, qty) VALUES (?, ?) RETURNING *").get(sku, qty) as Order;
          ctx.emit("created", row);
          return row;
        });
        ctx.set.status = 201;
        return order;
      },
    }),

    // GET /api/orders?limit=10 → newest orders first
    "GET /": route({
      query: t.Object({ limit: t.Optional(t.Integer({ minimum: 1, maximum: 1000 })) }),
      handler: (ctx) => ctx.db.query("SELECT * FROM orders ORDER BY id DESC LIMIT ?").all(ctx.query.limit ?? 100),
    }),

    // GET /api/orders/42
    "GET /:id": route({
      params: t.Object({ id: t.Integer() }),
      handler(ctx) {
        const order = ctx.db.query("SELECT * FROM orders WHERE id = ?").get(ctx.params.id);
        if (!order) throw new PlinthError("ORDERS_NOT_FOUND", `no order ${ctx.params.id}`, { status: 404 });
        return order;
      },
    }),
  },
});
