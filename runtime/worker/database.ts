/**
 * Opens a service's own SQLite file (WAL) and applies its migrations: each
 * once, in order, recorded in _plinth_migrations; the pending ones together, in one transaction.
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
  // All pending migrations in one transaction: a version whose migration k fails leaves the schema
  // as it found it (its previous version may still be serving on it, during a hot replacement).
  let current = applied;
  try {
    database.transaction(() => {
      for (; current < migrations.length; current++) {
        database.exec(migrations[current]!);
        database.query("INSERT INTO _plinth_migrations (version, applied_at) VALUES (?, ?)").run(current + 1, new Date().toISOString());
      }
    })();
  } catch (err) {
    database.close();
    const which = current < migrations.length ? `migration ${current + 1}` : "committing the migrations";
    throw new PlinthError("PLT_MIGRATION_FAILED", `${which} failed: ${(err as Error).message}`, { cause: err });
  }
  return database;
}
