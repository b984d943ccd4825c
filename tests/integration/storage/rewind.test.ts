/**
 * A source's event log that went back (an older copy of its file put back, its record gone with
 * it, as `plinth restore` leaves it): the subscribers whose cursors are past the restored log's end
 * must not skip the new events that reuse those positions. The log starts a new generation; a
 * subscriber that sees it takes the source's events from the new start.
 */
import { expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { copyFileSync, existsSync, rmSync } from "node:fs";
import { boot } from "../../helpers/boot";
import { eventually } from "../../helpers/mqtt";
import { tempDir } from "../../helpers/tmp";

const EXAMPLES = { examples: ["orders", "inventory", "notifications"] };

async function order(app: { req: (path: string, init: { json: unknown }) => Promise<Response> }): Promise<void> {
  const res = await app.req("/api/orders", { json: { sku: "apple", qty: 1 } });
  expect(res.status).toBe(201);
}

function count(dataDir: string): number {
  const db = new Database(`${dataDir}/notifications.sqlite`, { readonly: true });
  try {
    return (db.query("SELECT COUNT(*) AS n FROM notifications").get() as { n: number }).n;
  } finally {
    db.close();
  }
}

test("after an older copy of a source's file is put back, every event it commits is delivered", async () => {
  using dir = tempDir("plinth-rewind");
  const data = { dir: dir.join("data") };
  const run = async (orders: number, expected: number) => {
    const app = await boot(EXAMPLES, { data });
    try {
      for (let i = 0; i < orders; i++) await order(app);
      await eventually(() => count(data.dir) >= expected, 10_000, 20);
    } finally {
      await app.stop();
    }
  };

  await run(5, 5);
  // The platform is stopped: the file and its WAL (if one is left) are a consistent copy.
  copyFileSync(dir.join("data/orders.sqlite"), dir.join("orders.copy"));
  const wal = existsSync(dir.join("data/orders.sqlite-wal"));
  if (wal) copyFileSync(dir.join("data/orders.sqlite-wal"), dir.join("orders.copy-wal"));
  await run(5, 10);

  // Put the older copy back, without its record (as a restore does).
  for (const f of ["orders.sqlite-wal", "orders.sqlite-shm", "orders.log.json"]) rmSync(dir.join("data", f), { force: true });
  copyFileSync(dir.join("orders.copy"), dir.join("data/orders.sqlite"));
  if (wal) copyFileSync(dir.join("orders.copy-wal"), dir.join("data/orders.sqlite-wal"));
  await run(5, 15);
  expect(count(data.dir)).toBe(15);

  // The new events reused positions 6-10 in a generation of their own, which the subscriber now follows.
  const notifications = new Database(dir.join("data/notifications.sqlite"), { readonly: true });
  const orders = new Database(dir.join("data/orders.sqlite"), { readonly: true });
  try {
    expect((orders.query("SELECT max(seq) AS max FROM _plinth_outbox").get() as { max: number }).max).toBe(10);
    const cursor = notifications.query("SELECT seq, generation FROM _plinth_cursors WHERE source = 'orders'").get() as { seq: number; generation: string };
    expect(cursor.seq).toBe(10);
    expect(cursor.generation).toBe((JSON.parse(await Bun.file(dir.join("data/orders.log.json")).text()) as { generation: string }).generation);
  } finally {
    notifications.close();
    orders.close();
  }
}, 30_000);
