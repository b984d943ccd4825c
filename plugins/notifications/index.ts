/**
 * notifications: subscribes to every orders event and records it in its own
 * database. Shows how a service updates its state from another's events.
 */
import { definePlugin, type EventContext } from "plinth";

interface OrderCreated {
  id: number;
  sku: string;
  qty: number;
}

export default definePlugin({
  name: "notifications",
  version: "1.0.0",
  description: "Records a notification for every order event.",

  migrations: [
    `CREATE TABLE notifications (
      event_id TEXT PRIMARY KEY,
      type TEXT NOT NULL,
      message TEXT NOT NULL,
      received_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    )`,
  ],

  subscribe: {
    // An MQTT topic filter; the handler gets the CloudEvent envelope.
    "events/orders/#": (ctx: EventContext<OrderCreated>) => {
      const { event } = ctx;
      const message = `order ${event.data.id}: ${event.data.qty} × ${event.data.sku}`;
      // The event id is the primary key: a redelivered event is recorded once.
      ctx.db
        .query("INSERT INTO notifications (event_id, type, message) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
        .run(event.id, event.type, message);
    },
  },

  routes: {
    // GET /api/notifications → newest first
    "GET /": (ctx) => ctx.db.query("SELECT * FROM notifications ORDER BY received_at DESC, event_id DESC LIMIT 100").all(),
  },
});
