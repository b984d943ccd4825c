/**
 * Plinth's configuration. Every field is optional; the values shown are the
 * defaults. CLI flags (--port, --mqtt-port, --plugins, --data) override them.
 */
import { defineConfig } from "plinth";

export default defineConfig({
  gateway: { host: "127.0.0.1", port: 3000, maxBodyBytes: 1024 * 1024, requestTimeoutMs: 30_000 },
  broker: { host: "127.0.0.1", port: 1883, websocketPath: "/mqtt" },
  plugins: { dir: "./plugins", config: {} },
  data: { dir: "./data" },
  calls: { timeoutMs: 5_000 },
  breaker: { failureThreshold: 5, resetTimeoutMs: 10_000, halfOpenMaxCalls: 1 },
  workers: { restartDelayMs: 100, maxRestarts: 5, startTimeoutMs: 10_000 },
  log: { level: "info", format: "pretty" },
});
