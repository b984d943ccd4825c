/**
 * The built-in `platform` service: what is loaded, in what state, how its
 * breakers stand, and the dead letters each subscriber gave up on. Written
 * with the public SDK; it asks the node itself through the reserved `$node.*`
 * actions.
 */
import { definePlugin, route, t } from "plinth";

/** Operators only: these routes show and change the node's internals. */
const admin = ["admin"];
const service = t.Object({ service: t.String({ pattern: "^[a-z][a-z0-9-]*$" }) });

export default definePlugin({
  name: "platform",
  version: "0.1.0",
  description: "Loaded services, their state, their circuit breakers and dead letters.",
  routes: {
    "GET /services": route({ auth: admin, handler: (ctx) => ctx.call("$node.services") }),
    "GET /breakers": route({ auth: admin, handler: (ctx) => ctx.call("$node.breakers") }),
    // The cluster's nodes: what each hosts and its state (this node alone without a cluster).
    "GET /nodes": route({ auth: admin, handler: (ctx) => ctx.call("$node.nodes") }),
    // GET /api/platform/events?service=orders&after=0&limit=100 → a service's event log, oldest first
    "GET /events": route({
      auth: admin,
      query: t.Object({
        service: t.String({ pattern: "^[a-z][a-z0-9-]*$" }),
        after: t.Optional(t.Integer({ minimum: 0 })),
        limit: t.Optional(t.Integer({ minimum: 1, maximum: 1000 })),
      }),
      handler: (ctx) => ctx.call("$node.events", ctx.query),
    }),
    // GET /api/platform/deadletters/notifications → events that subscriber gave up on
    "GET /deadletters/:service": route({
      auth: admin,
      params: service,
      handler: (ctx) => ctx.call("$node.deadletters", { service: ctx.params.service }),
    }),
    // POST /api/platform/deadletters/notifications/3/redrive → handle it again; removed on success
    "POST /deadletters/:service/:letter/redrive": route({
      auth: admin,
      params: t.Object({ service: t.String(), letter: t.Integer({ minimum: 1 }) }),
      async handler(ctx) {
        await ctx.call("$node.redrive", { service: ctx.params.service, letter: ctx.params.letter });
        return { redriven: ctx.params.letter };
      },
    }),
  },
});
