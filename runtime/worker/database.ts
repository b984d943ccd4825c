/**
 * Opens a service's own SQLite file (WAL) and applies its migrations: each
 * once, in order, recorded in _plinth_migrations; the pending ones together, in one transaction.
 */
import type { Database } from "bun:sqlite";
import { join } from "node:path";
import { PlinthError } from "../errors";
import type { Logger } from "../log";
import type { PluginDefinition } from "../sdk/define";
import { damageOf, openStore, type StoreOptions } from "../storage/open";

/**
 * A damaged file, or one that is not SQLite, fails with PLT_STORAGE_CORRUPT (found by the quick_check
 * of `store.quickCheckMaxBytes`, or by reading it here); `log` hears of a file too big to check.
 */
export function openDatabase(dataDir: string, plugin: PluginDefinition, store: StoreOptions, log?: Pick<Logger, "warn">): Database {
  const file = join(dataDir, `${plugin.name}.sqlite`);
  const database = openStore(file, store, log);
  const migrations = plugin.migrations ?? [];
  // All pending migrations in one transaction: a version whose migration k fails leaves the schema
  // as it found it (its previous version may still be serving on it, during a hot replacement).
  let current = -1;
  try {
    database.exec("PRAGMA foreign_keys = ON");
    database.exec("CREATE TABLE IF NOT EXISTS _plinth_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)");
    current = (database.query("SELECT COUNT(*) AS n FROM _plinth_migrations").get() as { n: number }).n;
    database.transaction(() => {
      for (; current < migrations.length; current++) {
        database.exec(migrations[current]!);
        database.query("INSERT INTO _plinth_migrations (version, applied_at) VALUES (?, ?)").run(current + 1, new Date().toISOString());
      }
    })();
  } catch (err) {
    database.close();
    const damage = damageOf(file, err);
    if (damage) throw damage;
    if (current < 0) throw err;
    const which = current < migrations.length ? `migration ${current + 1}` : "committing the migrations";
    throw new PlinthError("PLT_MIGRATION_FAILED", `${which} failed: ${(err as Error).message}`, { cause: err });
  }
  return database;
}
