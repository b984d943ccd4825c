/**
 * `plinth status`: services, their state and breakers, from a running platform's HTTP API, and in a
 * cluster its nodes; and from its /health, whether it is degraded and which stores fail to take writes
 * (disk full, read-only...).
 */
import type { HealthReport, StorageReport } from "../gateway/health";

interface Described {
  services: Array<{ name: string; version?: string; state: string; breaker: string; restarts: number; origin: string }>;
  failed: Array<{ origin: string; error: { code: string; message: string } }>;
}

interface NodeRow {
  node: string;
  state: string;
  url?: string;
  services: string[];
}

export async function status(url: string, key: string | undefined): Promise<number> {
  let res: Response;
  try {
    res = await fetch(`${url.replace(/\/$/, "")}/api/platform/services`, { headers: keyHeader(key) });
  } catch (err) {
    console.error(`plinth: cannot reach ${url}: ${(err as Error).message}`);
    return 1;
  }
  if (!res.ok) {
    const error = ((await res.json().catch(() => ({}))) as { error?: { code: string; message: string } }).error;
    console.error(`plinth: ${url} answered ${res.status}${error ? `: ${error.code}: ${error.message}` : ""}`);
    return 1;
  }
  const { services, failed } = (await res.json()) as Described;
  const health = (await fetch(`${url.replace(/\/$/, "")}/health`).then((r) => r.json()).catch(() => null)) as HealthReport | null;
  if (health) console.log(`status: ${health.status}\n`);
  const rows = [["SERVICE", "VERSION", "STATE", "BREAKER", "RESTARTS", "FROM"]];
  for (const s of services) rows.push([s.name, s.version ?? "", s.state, s.breaker, String(s.restarts), s.origin]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd());
  for (const f of failed) console.log(`\nfailed to load: ${f.origin}\n  ${f.error.code}: ${f.error.message}`);
  // In a cluster, its nodes (without one the node lists itself alone, as "local": nothing to add).
  const nodes = (await fetch(`${url.replace(/\/$/, "")}/api/platform/nodes`, { headers: keyHeader(key) }).then((r) => (r.ok ? r.json() : []), () => [])) as NodeRow[];
  if (nodes.length > 1 || (nodes.length === 1 && nodes[0]!.node !== "local")) {
    const table = [["NODE", "STATE", "GATEWAY", "SERVICES"], ...nodes.map((n) => [n.node, n.state, n.url ?? "", n.services.join(", ")])];
    const w = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
    console.log("");
    for (const r of table) console.log(r.map((cell, i) => cell.padEnd(w[i]!)).join("  ").trimEnd());
  }
  if (!health) return 0;
  const stores: Array<[string, StorageReport | "ok"]> = Object.entries(health.services).map(([name, s]) => [name, s.storage]);
  stores.push(["broker", health.broker.storage]);
  for (const [name, storage] of stores) {
    if (storage !== "ok") console.log(`\nstorage failing: ${name}: ${storage.reason} (${storage.code}) since ${storage.since}`);
  }
  return 0;
}

/** An admin API key for the platform's own routes (--key or PLINTH_API_KEY). */
export function keyHeader(key: string | undefined): Record<string, string> {
  return key ? { "x-api-key": key } : {};
}
