/**
 * The built-in `platform` service: what is loaded, in what state, and how its
 * breakers stand. Written with the public SDK; it asks the node itself through
 * the reserved `$node.*` actions.
 */
import { definePlugin } from "plinth";

export default definePlugin({
  name: "platform",
  version: "0.1.0",
  description: "Loaded services, their state and their circuit breakers.",
  routes: {
    "GET /services": (ctx) => ctx.call("$node.services"),
    "GET /breakers": (ctx) => ctx.call("$node.breakers"),
  },
});
