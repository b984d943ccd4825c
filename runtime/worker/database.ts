/**
 * Opens a service's own SQLite file (WAL) and applies its migrations: each
 * once, in order, in its own transaction, recorded in _plinth_migrations.
 */
import { Database } from "bun:sqlite";
import { join } from "node:path";
import { PlinthError } from "../errors";
import type { PluginDefinition } from "../sdk/define";

/** `autoCheckpointPages`: see checkpointer.ts (unset: SQLite's default). */
export function openDatabase(dataDir: string, plugin: PluginDefinition, autoCheckpointPages?: number): Database {
  const database = new Database(join(dataDir, `${plugin.name}.sqlite`), { create: true, strict: true });
  // busy_timeout first: switching to WAL takes a lock that another connection may hold.
  database.exec("PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;");
  if (autoCheckpointPages !== undefined) database.exec(`PRAGMA wal_autocheckpoint = ${Math.trunc(autoCheckpointPages)}`);
  database.exec("CREATE TABLE IF NOT EXISTS _plinth_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)");
  const applied = (database.query("SELECT COUNT(*) AS n FROM _plinth_migrations").get() as { n: number }).n;
  const migrations = plugin.migrations ?? [];
  for (let i = applied; i < migrations.length; i++) {
    try {
      database.transaction(() => {
        database.exec(migrations[i]!);
        database.query("INSERT INTO _plinth_migrations (version, applied_at) VALUES (?, ?)").run(i + 1, new Date().toISOString());
      })();
    } catch (err) {
      database.close();
      throw new PlinthError("PLT_MIGRATION_FAILED", `migration ${i + 1} failed: ${(err as Error).message}`, { cause: err });
    }
  }
  return database;
}
