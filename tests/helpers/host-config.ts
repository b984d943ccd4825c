/** The config sections a WorkerHost reads, every default filled, with the quick timings host tests use. */
import { Value } from "@sinclair/typebox/value";
import { ConfigSchema, type Config } from "../../config/schema";
import type { HostConfig } from "../../runtime/worker/host";

export function hostConfig(dataDir: string, workers: Partial<Config["workers"]> = {}): HostConfig {
  const section = <K extends keyof HostConfig>(key: K, value: object) => Value.Default(ConfigSchema.properties[key], value) as HostConfig[K];
  return {
    workers: section("workers", { startTimeoutMs: 5_000, heartbeatMs: 1_000, heartbeatTimeoutMs: 5_000, maxHeapBytes: 0, groupCommitMs: 0.2, restartDelayMs: 10, maxRestarts: 2, ...workers }),
    events: section("events", { retainSent: 100, retainSentMs: 60_000 }),
    data: section("data", { dir: dataDir, durability: "full" }),
    log: section("log", { format: "pretty" }),
  };
}
