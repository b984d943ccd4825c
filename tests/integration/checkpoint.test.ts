/**
 * The WAL checkpointer (runtime/storage/checkpointer.ts): a service's committed writes reach its main
 * database file from the checkpointer's thread, and the service's worker leaves checkpoints to it
 * (its auto-checkpoint is raised from SQLite's 1,000 pages to a fallback of 10,000).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { boot, type Booted } from "../helpers/boot";
import { eventually } from "../helpers/mqtt";
import { tempDir } from "../helpers/tmp";

const plugin = `import { definePlugin } from "plinth";
export default definePlugin({
  name: "w", version: "1.0.0",
  migrations: ["CREATE TABLE rows (id INTEGER PRIMARY KEY, v TEXT NOT NULL)"],
  routes: {
    "POST /": (ctx) => void ctx.db.query("INSERT INTO rows (v) VALUES ('x')").run(),
    // ~50 KB per row: 100 of them are more than SQLite's default auto-checkpoint of 1,000 pages.
    "POST /big": (ctx) => void ctx.db.query("INSERT INTO rows (v) VALUES (hex(randomblob(25000)))").run(),
  },
});
`;

let p: Booted | undefined;
afterEach(async () => {
  await p?.stop();
  p = undefined;
});

/** Rows in the main database file alone, as a copy without its WAL shows them (none if the table is not there yet). */
function rowsInMainFile(dataDir: string): number {
  using dir = tempDir("plinth-main-file");
  const copy = join(dir.path, "w.sqlite");
  copyFileSync(join(dataDir, "w.sqlite"), copy);
  const db = new Database(copy, { readonly: true });
  try {
    return (db.query("SELECT COUNT(*) AS n FROM rows").get() as { n: number }).n;
  } catch {
    return 0;
  } finally {
    db.close();
  }
}

async function write(n: number, path = "/api/w"): Promise<void> {
  for (let i = 0; i < n; i++) expect((await p!.req(path, { method: "POST" })).status).toBe(204);
}

describe("WAL checkpointer", () => {
  test("committed writes reach the main database file within a few intervals", async () => {
    p = await boot({ files: { "w.ts": plugin } }, { data: { checkpointMs: 20 } });
    await write(50);
    expect(await eventually(() => rowsInMainFile(p!.dataDir) === 50, 3_000)).toBe(true);
  });

  test("with data.checkpointMs 0 they stay in the WAL until SQLite's own 1,000-page checkpoint", async () => {
    p = await boot({ files: { "w.ts": plugin } }, { data: { checkpointMs: 0 } });
    await write(50);
    // A window on purpose: rows staying in the WAL shows only as time passing (15 of the intervals
    // that move them within the first test).
    await Bun.sleep(300);
    expect(rowsInMainFile(p.dataDir)).toBe(0);
  });

  test("while it runs, the worker does not checkpoint at 1,000 pages itself (its fsyncs would stall its requests)", async () => {
    // Running, but its first round is a minute away: whatever reaches the main file, the worker put there.
    p = await boot({ files: { "w.ts": plugin } }, { data: { checkpointMs: 60_000 } });
    await write(100, "/api/w/big");
    expect(rowsInMainFile(p.dataDir)).toBe(0);
  });

  test("without it, the worker's own checkpoint at 1,000 pages moves the rows to the main file", async () => {
    p = await boot({ files: { "w.ts": plugin } }, { data: { checkpointMs: 0 } });
    await write(100, "/api/w/big");
    expect(rowsInMainFile(p.dataDir)).toBeGreaterThan(0);
  });
});
