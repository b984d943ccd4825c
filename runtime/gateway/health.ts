/**
 * `GET /health`: whether this node serves everything it should. "degraded" when a plugin failed to
 * load, a service is not ready, or a store (a service's own database, the broker's) fails to take
 * writes: disk full, read-only, I/O error, corrupt. Each store that fails says why and since when;
 * it is "ok" again by itself once writes to that store commit again.
 *
 * Always 200 while the process serves, degraded or not: the body says which. Load balancers and
 * Kubernetes probes take any status outside 200–399 as "take this node out" (readiness) or "restart
 * it" (liveness). Neither helps a full or read-only disk: a restart does not free space, and taking
 * the node out stops the services and reads that still work, on every node at once when they share
 * the cause (a full volume). A client of the failing store gets its own precise answer instead
 * (507 PLT_STORAGE_FULL, 503 PLT_STORAGE_UNAVAILABLE, with Retry-After).
 */
import { join } from "node:path";
import type { Config } from "../../config/schema";
import { BROKER_DB_FILE } from "../broker/persistence";
import { storeHealth, type StorageHealth, type StorageState } from "../storage/faults";
import { VERSION } from "../version";
import type { Upstream } from "./upstream";

/** A store's fault as /health shows it (SQLite's message stays in the log: an OS error's names a path). */
export interface StorageReport {
  reason: StorageState["reason"];
  code: string;
  since: string;
}

/** The broker store's health, when it is kept on disk. */
export function brokerStore(config: Readonly<Config>): StorageHealth | null {
  return config.broker.persistence === "sqlite" ? storeHealth(join(config.data.dir, BROKER_DB_FILE)) : null;
}

export function healthReport(loader: Upstream, broker: StorageHealth | null, startedAt: number) {
  const { services, failed } = loader.describe();
  let degraded = failed.length > 0 || broker?.fault != null;
  const byName: Record<string, { state: string; version?: string; breaker: string; storage: StorageReport | "ok" }> = {};
  for (const s of services) {
    const fault = loader.services.get(s.name)?.host.storage ?? null;
    if (s.state !== "ready" || fault) degraded = true;
    byName[s.name] = { state: s.state, version: s.version, breaker: s.breaker, storage: report(fault) };
  }
  return {
    status: degraded ? ("degraded" as const) : ("ok" as const),
    version: VERSION,
    uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
    services: byName,
    broker: { storage: report(broker?.fault ?? null) },
    failed,
  };
}

export type HealthReport = ReturnType<typeof healthReport>;

function report(fault: StorageState | null): StorageReport | "ok" {
  return fault ? { reason: fault.reason, code: fault.cause, since: fault.since } : "ok";
}
