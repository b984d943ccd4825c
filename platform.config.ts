/**
 * Plinth's configuration for local development. Every field is optional; the
 * values shown are the defaults, except `auth`: this file opens the example
 * plugins' routes and MQTT to anonymous callers so the quick start works with
 * plain curl and mosquitto_sub. Without it (the binary's defaults) every route
 * needs a token or API key and MQTT clients need credentials.
 * CLI flags (--port, --mqtt-port, --plugins, --data) override the file.
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
  // Development only. Production: remove this (secure default "authenticated"), create keys
  // with `plinth keys create --role admin`, and/or set auth.jwt.secret / publicKeyFile / jwksFile.
  auth: { defaultPolicy: "public", mqtt: { anonymous: true } },
});
