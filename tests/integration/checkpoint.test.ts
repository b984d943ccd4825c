/**
 * The WAL checkpointer (runtime/worker/checkpointer.ts): a service's committed writes reach its main
 * database file from the checkpointer's thread, long before SQLite's own auto-checkpoint (1,000 pages)
 * would have run them in the service's worker.
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
  routes: { "POST /": (ctx) => void ctx.db.query("INSERT INTO rows (v) VALUES ('x')").run() },
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

async function write(n: number): Promise<void> {
  for (let i = 0; i < n; i++) expect((await p!.req("/api/w", { method: "POST" })).status).toBe(204);
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
    await Bun.sleep(300);
    expect(rowsInMainFile(p.dataDir)).toBe(0);
  });
});
