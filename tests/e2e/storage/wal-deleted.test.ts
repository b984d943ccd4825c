/**
 * A service's WAL deleted after kill -9 (an operator's mistake, or a backup that copies only
 * *.sqlite): the commits it held are gone, and the service's event log is shorter than what its
 * subscribers already handled. The log must not hand those sequence numbers out again (the
 * subscriber would skip the new events as handled): every event committed after the restart is
 * delivered, and the subscriber's side logs that the source's log went back.
 */
import { expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { rmSync, writeFileSync } from "node:fs";
import { OPEN_AUTH, startBinary, type Running } from "../../helpers/binary";
import { eventually } from "../../helpers/mqtt";
import { writePlugins } from "../../helpers/plugins";
import { tempDir } from "../../helpers/tmp";

const BEFORE = 100;
const AFTER = 50;

async function placeOrders(app: Running, n: number): Promise<number[]> {
  const ids: number[] = [];
  let next = 0;
  const worker = async () => {
    while (next++ < n) {
      const res = await fetch(`${app.url}/api/orders`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ sku: "apple", qty: 1 }) });
      expect(res.status).toBe(201);
      ids.push(((await res.json()) as { id: number }).id);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return ids;
}

function notified(dataDir: string): number {
  const db = new Database(`${dataDir}/notifications.sqlite`, { readonly: true });
  try {
    return (db.query("SELECT COUNT(*) AS n FROM notifications").get() as { n: number }).n;
  } finally {
    db.close();
  }
}

test(`orders' WAL deleted after kill -9: all ${AFTER} events committed after the restart reach the subscriber`, async () => {
  using dir = tempDir("plinth-e2e-wal");
  writePlugins(dir.join("plugins"), { examples: ["orders", "inventory", "notifications"] });
  // No checkpointer: the orders' commits stay in its WAL, which is then lost whole.
  writeFileSync(dir.join("platform.config.ts"), `export default { ${OPEN_AUTH}, data: { checkpointMs: 0 } };\n`);
  const data = dir.join("data");

  const first = await startBinary(dir.path);
  await placeOrders(first, BEFORE);
  await eventually(() => notified(data) === BEFORE, 10_000, 20);
  first.proc.kill("SIGKILL");
  await first.proc.exited;
  for (const f of ["orders.sqlite-wal", "orders.sqlite-shm"]) rmSync(`${data}/${f}`, { force: true });

  await using again = await startBinary(dir.path);
  const ids = await placeOrders(again, AFTER);
  // The lost orders' ids are reused (they are the plugin's own AUTOINCREMENT-less ids): their events are not.
  expect(Math.min(...ids)).toBeLessThanOrEqual(BEFORE);
  await eventually(() => notified(data) === BEFORE + AFTER, 10_000, 20);
  expect(notified(data)).toBe(BEFORE + AFTER);

  const orders = new Database(`${data}/orders.sqlite`, { readonly: true });
  try {
    const seqs = (orders.query("SELECT seq FROM _plinth_outbox").all() as Array<{ seq: number }>).map((r) => r.seq);
    expect(seqs).toHaveLength(AFTER);
    expect(Math.min(...seqs)).toBeGreaterThan(BEFORE);
  } finally {
    orders.close();
  }
  // Noticed once, by the subscriber's side.
  expect(again.log().match(/a source's event log went back/g)).toHaveLength(1);
  expect(again.log()).toContain("source=orders");
}, 60_000);
