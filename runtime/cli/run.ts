/** `plinth run`: load the config, start the platform, stop cleanly on SIGINT/SIGTERM. */
import { hostname } from "node:os";
import type { Argv } from "yargs";
import { loadConfig } from "../../config/load";
import { createLogger } from "../log";
import { startPlatform } from "../platform";
import { registerSdkModule } from "../sdk/module";

export interface RunFlags {
  config?: string;
  port?: number;
  "mqtt-port"?: number;
  plugins?: string;
  data?: string;
  "log-level"?: string;
  watch?: boolean;
  cluster?: string;
  node?: string;
}

export function runOptions<T>(y: Argv<T>) {
  return y
    .option("config", { alias: "c", type: "string", describe: "Config file (default: ./platform.config.ts if present)" })
    .option("port", { alias: "p", type: "number", describe: "Gateway HTTP port (gateway.port)" })
    .option("mqtt-port", { type: "number", describe: "MQTT TCP port (broker.port)" })
    .option("plugins", { type: "string", describe: "Plugins folder (plugins.dir)" })
    .option("data", { type: "string", describe: "Data folder for SQLite files (data.dir)" })
    .option("log-level", { type: "string", describe: "debug | info | warn | error | silent (log.level)" })
    .option("watch", { type: "boolean", describe: "Hot-reload the plugins folder (plugins.watch, default on; --no-watch)" })
    .option("cluster", { type: "string", describe: "Join a cluster over this MQTT broker, e.g. mqtt://127.0.0.1:1883 (cluster.url)" })
    .option("node", { type: "string", describe: "This node's name in the cluster (cluster.node; default: the host's name)" });
}

/** The host's name as a node name (letters, digits, `_ -`). */
function nodeName(): string {
  return hostname().replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 64) || "node";
}

export async function run(flags: RunFlags): Promise<void> {
  registerSdkModule(); // platform.config.ts may import from "plinth"
  const { config } = await loadConfig({
    ...(flags.config ? { file: flags.config } : {}),
    overrides: {
      gateway: { port: flags.port },
      broker: { port: flags["mqtt-port"] },
      plugins: { dir: flags.plugins, watch: flags.watch },
      data: { dir: flags.data },
      log: { level: flags["log-level"] as never },
      ...(flags.cluster !== undefined || flags.node !== undefined ? { cluster: { url: flags.cluster, node: flags.node ?? nodeName() } as never } : {}),
    },
  });
  const log = createLogger({ level: config.log.level, format: config.log.format });
  // Handlers first: a signal that arrives as the platform becomes ready (or while it starts) stops it cleanly.
  const starting = startPlatform(config, log);
  const shutdown = (signal: string) => {
    log.info("shutting down", { signal });
    starting
      .then((platform) => platform.stop())
      .then(
        () => process.exit(0),
        (err: Error) => {
          log.error("shutdown failed", { error: err.message });
          process.exit(1);
        },
      );
  };
  process.once("SIGINT", () => shutdown("SIGINT"));
  process.once("SIGTERM", () => shutdown("SIGTERM"));
  await starting;
}
