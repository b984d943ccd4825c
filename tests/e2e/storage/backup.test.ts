/**
 * Backup and restore while running (the compiled binary): a backup taken beside a platform under
 * steady write load, restored into a fresh folder, serves every order and event it holds; restore
 * is refused while a platform holds the folder.
 */
import { Database } from "bun:sqlite";
import { expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { BINARY, startBinary } from "../../helpers/binary";
import { writePlugins } from "../../helpers/plugins";
import { tempDir } from "../../helpers/tmp";

const binary = process.env.PLINTH_E2E_BINARY ?? BINARY;

/** Runs a command of the binary to completion. */
async function plinth(cwd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = Bun.spawn([binary, ...args], { cwd, stdout: "pipe", stderr: "pipe", stdin: "ignore", timeout: 15_000 });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

const EXAMPLES = { examples: ["orders", "inventory", "notifications"] };

function readOnly<T>(file: string, fn: (db: Database) => T): T {
  const db = new Database(file, { readonly: true, strict: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

interface Order {
  id: number;
  sku: string;
  qty: number;
  created_at: string;
}

test("a backup taken under steady write load, restored into a fresh folder: every order and event it holds is there and served", async () => {
  using source = tempDir("plinth-e2e-backup-source");
  using target = tempDir("plinth-e2e-backup-target");
  writePlugins(source.join("plugins"), EXAMPLES);
  writePlugins(target.join("plugins"), EXAMPLES);
  const backupDir = source.join("backup");

  await using running = await startBinary(source.path, ["--no-watch"], binary);
  // Steady load: four clients each sending an order as soon as the last one is answered.
  let load = true;
  let created = 0;
  const post = () => fetch(`${running.url}/api/orders`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ sku: "apple", qty: 1 }) });
  const clients = Array.from({ length: 4 }, async () => {
    while (load) {
      const res = await post();
      expect(res.status).toBe(201);
      created++;
    }
  });
  while (created < 50) await Bun.sleep(5);
  const taken = await plinth(source.path, ["backup", backupDir]);
  const answeredByThen = created;
  // Writes go on after the copy (each client may have had one more committed, not yet answered, when it ended).
  while (created <= answeredByThen + 4) await Bun.sleep(5);
  load = false;
  await Promise.all(clients);
  expect(taken.stderr).toBe("");
  expect(taken.code).toBe(0);
  expect(taken.stdout).toContain(`wrote ${backupDir}/orders.sqlite (`);
  expect(taken.stdout).toContain(`backup complete: 6 files in ${backupDir}`);
  expect(readdirSync(backupDir).sort()).toEqual(["_broker.sqlite", "auth.sqlite", "inventory.sqlite", "notifications.sqlite", "orders.sqlite", "platform.sqlite", "plinth-backup.json"]);
  expect(existsSync(`${backupDir}/orders.log.json`)).toBe(false);
  await running.stop();

  // What the backup holds: orders, and the events in orders' outbox.
  const orders = readOnly(`${backupDir}/orders.sqlite`, (db) => db.query("SELECT * FROM orders ORDER BY id").all() as Order[]);
  const events = readOnly(`${backupDir}/orders.sqlite`, (db) => db.query("SELECT id FROM _plinth_outbox WHERE type = 'created' ORDER BY seq").all() as Array<{ id: string }>);
  expect(orders.length).toBeGreaterThanOrEqual(50);
  expect(orders.length).toBeLessThanOrEqual(answeredByThen + 4); // a copy of a moment, not of the end
  expect(orders.length).toBeLessThan(1_000); // GET /api/orders?limit=1000 lists them all
  expect(events).toHaveLength(orders.length);

  const restored = await plinth(target.path, ["restore", backupDir]);
  expect(restored.stderr).toBe("");
  expect(restored.code).toBe(0);
  expect(restored.stdout).toContain(`restored ${target.join("data/orders.sqlite")} (`);

  await using again = await startBinary(target.path, ["--no-watch"], binary);
  // Every order of the backup is served, as it was, and nothing else.
  const served = (await (await fetch(`${again.url}/api/orders?limit=1000`)).json()) as Order[];
  expect(served.toReversed()).toEqual(orders);
  // Every event of the backup reaches the subscriber (recorded before the backup, or delivered from the restored log).
  const wanted = new Set(events.map((e) => e.id));
  const deadline = Date.now() + 10_000;
  let missing: string[] = [];
  for (;;) {
    const heard = new Set(readOnly(target.join("data/notifications.sqlite"), (db) => db.query("SELECT event_id FROM notifications").all() as Array<{ event_id: string }>).map((r) => r.event_id));
    missing = [...wanted].filter((id) => !heard.has(id));
    if (missing.length === 0 || Date.now() > deadline) break;
    await Bun.sleep(20);
  }
  expect(missing).toEqual([]);
  // New orders go on after the restored ones.
  const next = (await (await fetch(`${again.url}/api/orders`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ sku: "pear", qty: 2 }) })).json()) as Order;
  expect(next.id).toBeGreaterThan(orders.at(-1)!.id);
});

test("restore is refused while the platform runs on the folder: exit 1, one line; the platform goes on serving", async () => {
  using dir = tempDir("plinth-e2e-restore-locked");
  writePlugins(dir.join("plugins"), EXAMPLES);
  await using running = await startBinary(dir.path, ["--no-watch"], binary);
  const taken = await plinth(dir.path, ["backup", dir.join("backup")]);
  expect(taken.code).toBe(0);
  const refused = await plinth(dir.path, ["restore", dir.join("backup")]);
  expect(refused.code).toBe(1);
  expect(refused.stdout).toBe("");
  const lines = refused.stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^plinth: PLT_DATA_LOCKED: data folder .* is in use by another plinth process \(pid \d+\)/);
  expect(lines[0]).toContain(dir.join("data"));
  const order = await fetch(`${running.url}/api/orders`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ sku: "apple", qty: 1 }) });
  expect(order.status).toBe(201);
});
