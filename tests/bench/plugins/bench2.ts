/** The second hop of the bench's A → B call chain. */
import { definePlugin } from "plinth";

export default definePlugin({
  name: "bench2",
  version: "1.0.0",
  actions: {
    echo: (ctx) => ({ ok: ctx.params }),
  },
});
