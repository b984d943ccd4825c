/**
 * Damage is detected (the compiled binary): a service whose file has a damaged page fails at load
 * naming the file while the others serve, `plinth check` names it; a damaged broker store, or one
 * that is not SQLite, ends start-up in one line.
 */
import { Database } from "bun:sqlite";
import { expect, test } from "bun:test";
import { closeSync, existsSync, mkdirSync, openSync, statSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { BINARY, startBinary } from "../../helpers/binary";
import { writePlugins } from "../../helpers/plugins";
import { tempDir } from "../../helpers/tmp";
import { BROKER_DB_FILE } from "../../../runtime/broker/persistence/index";
import { openBrokerDatabase } from "../../../runtime/broker/persistence/schema";

const binary = process.env.PLINTH_E2E_BINARY ?? BINARY;

/** Runs a command of the binary to completion. */
async function plinth(cwd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = Bun.spawn([binary, ...args], { cwd, stdout: "pipe", stderr: "pipe", stdin: "ignore", timeout: 15_000 });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

/** Writes 4 KiB of random bytes over the file's middle page (its first byte no b-tree page type); returns the page's number. */
function damageMiddlePage(file: string): number {
  expect(existsSync(`${file}-wal`) ? statSync(`${file}-wal`).size : 0).toBe(0); // the page's only copy is in the file
  const pages = Math.floor(statSync(file).size / 4096);
  expect(pages).toBeGreaterThan(20);
  const page = Math.floor(pages / 2);
  const bytes = crypto.getRandomValues(new Uint8Array(4096));
  bytes[0] = 0;
  const fd = openSync(file, "r+");
  writeSync(fd, bytes, 0, 4096, page * 4096);
  closeSync(fd);
  return page + 1;
}

/** One line on stderr naming what it must, with nothing of a stack trace. */
function expectOneLine(stderr: string, ...names: Array<string | RegExp>): void {
  const lines = stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  for (const name of names) expect(lines[0]!).toMatch(name);
  expect(stderr).not.toMatch(/\n\s+at |\.ts:\d+|runtime\//);
}

test("a damaged page in the middle of a service's file: that service fails at load naming the file, the others serve, plinth check exits 1 naming it", async () => {
  using dir = tempDir("plinth-e2e-damage");
  writePlugins(dir.join("plugins"), { examples: ["orders", "inventory", "notifications"] });
  const file = dir.join("data/notifications.sqlite");
  // A first run creates each service's file and tables; then the notifications file gets enough rows for many pages.
  const first = await startBinary(dir.path, ["--no-watch"], binary);
  expect(await first.stop()).toBe(0);
  const db = new Database(file, { strict: true });
  const insert = db.query("INSERT INTO notifications (event_id, type, message) VALUES (?, 'created', ?)");
  db.transaction(() => {
    for (let i = 0; i < 3_000; i++) insert.run(crypto.randomUUID(), `order ${i}: 1 × apple`);
  })();
  db.close();
  const page = damageMiddlePage(file);

  await using running = await startBinary(dir.path, ["--no-watch"], binary);
  const health = (await (await fetch(`${running.url}/health`)).json()) as { failed: Array<{ origin: string; error: { code: string; message: string } }> };
  expect(health.failed).toHaveLength(1);
  expect(health.failed[0]!.origin).toContain("notifications");
  expect(health.failed[0]!.error.code).toBe("PLT_STORAGE_CORRUPT");
  expect(health.failed[0]!.error.message).toStartWith(`${file} is damaged (quick_check: `);
  expect(running.log()).toContain(file);
  // The others serve.
  const order = await fetch(`${running.url}/api/orders`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ sku: "apple", qty: 1 }) });
  expect(order.status).toBe(201);
  expect((await fetch(`${running.url}/api/inventory/apple`)).status).toBe(200);

  // plinth check, beside the running platform: one line per file, the damaged one naming its table and page.
  const all = await plinth(dir.path, ["check"]);
  expect(all.code).toBe(1);
  const lines = all.stdout.trim().split("\n");
  expect(lines).toContain(`${dir.join("data/orders.sqlite")}: ok`);
  expect(lines).toContain(`${dir.join(`data/${BROKER_DB_FILE}`)}: ok`);
  expect(lines.find((l) => l.startsWith(file))).toMatch(new RegExp(`^${file}: DAMAGED: Tree \\d+ \\((table notifications|index sqlite_autoindex_notifications_1)\\) page ${page}: `));
  expect(lines).toHaveLength(6); // _broker, auth, inventory, notifications, orders, platform
  const one = await plinth(dir.path, ["check", "orders"]);
  expect([one.code, one.stdout.trim()]).toEqual([0, `${dir.join("data/orders.sqlite")}: ok`]);
  const json = await plinth(dir.path, ["check", "notifications", "--json"]);
  expect(json.code).toBe(1);
  expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, files: [{ file, ok: false }] });
});

test("a broker store that is damaged, or not SQLite at all, ends start-up with exit 1 and one line naming the file and what to do", async () => {
  using dir = tempDir("plinth-e2e-broker-damage");
  writePlugins(dir.join("plugins"), {});
  writeFileSync(dir.join("platform.config.ts"), "export default {};\n");
  mkdirSync(dir.join("data"));
  const file = join(dir.join("data"), BROKER_DB_FILE);
  // The broker's own schema, with enough retained messages for many pages.
  openBrokerDatabase(file, { durability: "full" }).close();
  const db = new Database(file, { strict: true });
  const insert = db.query("INSERT INTO retained (topic, payload, meta) VALUES (?, ?, '{}')");
  db.transaction(() => {
    for (let i = 0; i < 2_000; i++) insert.run(`sensors/${i}`, Buffer.alloc(100, i));
  })();
  db.close();
  damageMiddlePage(file);
  const damaged = await plinth(dir.path, ["run", "--port", "0", "--mqtt-port", "0"]);
  expect(damaged.code).toBe(1);
  expectOneLine(damaged.stderr, `${file} is damaged (quick_check: `, "restore it from a backup", "move it away");

  writeFileSync(file, "this is a text file, not a database\n".repeat(100));
  const notSqlite = await plinth(dir.path, ["run", "--port", "0", "--mqtt-port", "0"]);
  expect(notSqlite.code).toBe(1);
  expectOneLine(notSqlite.stderr, `${file} is not a SQLite database (file is not a database)`, "restore it from a backup", "move it away");
});
