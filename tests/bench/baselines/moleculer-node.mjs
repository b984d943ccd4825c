/**
 * Baseline: Moleculer 0.14 across nodes through an MQTT broker (its MQTT transporter, on the same
 * mosquitto as Plinth's cluster). Run as `node moleculer-node.mjs <mqtt-url> service` for the node that
 * hosts `echo.hello` (an action returning a small object), and `... gateway` for the node whose
 * moleculer-web gateway answers GET /api/echo by calling it on the other node. Prints "listening
 * http://127.0.0.1:<port>" (gateway) or "ready" (service).
 *
 * Plain JavaScript (Node.js 20 does not run TypeScript); the bench runs it with `node`.
 */
import Moleculer from "moleculer";
import ApiGateway from "moleculer-web";

const [url, role] = process.argv.slice(2);
const broker = new Moleculer.ServiceBroker({ nodeID: `bench-${role}`, transporter: url, logger: false, metrics: false, tracing: false });

if (role === "service") {
  broker.createService({ name: "echo", actions: { hello: () => ({ ok: true }) } });
} else {
  const api = broker.createService({
    name: "api",
    mixins: [ApiGateway],
    settings: { port: 0, ip: "127.0.0.1", logRequest: null, logResponse: null, routes: [{ path: "/api", aliases: { "GET /echo": "echo.hello" }, mappingPolicy: "restrict" }] },
  });
  broker.waitForServices(["echo"]).then(() => console.log(`listening http://127.0.0.1:${api.server.address().port}`));
}
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => void broker.stop().finally(() => process.exit(0)));
await broker.start();
if (role === "service") console.log("ready");
