/**
 * The broker's persistence as configured: SQLite in the data folder, or ("memory") the same store on
 * an in-memory SQLite database, lost on exit. One implementation for both, so that both keep the
 * per-client queue bound (`broker.maxQueuedPerClient`) and count what it drops.
 */
import { join } from "node:path";
import type { Config } from "../../../config/schema";
import { PlinthError } from "../../errors";
import type { Logger } from "../../log";
import type { StoreOptions } from "../../storage/open";
import { SqlitePersistence } from "./sqlite";

/** Cannot be a service's `<name>.sqlite`: service names start with a letter and hold no "_". */
export const BROKER_DB_FILE = "_broker.sqlite";

export function openPersistence(config: Config["broker"], dataDir: string | undefined, store?: StoreOptions, log?: Pick<Logger, "warn">): SqlitePersistence {
  if (config.persistence === "memory") return new SqlitePersistence({ file: ":memory:", maxQueuedPerClient: config.maxQueuedPerClient });
  if (dataDir === undefined) throw new Error('broker.persistence "sqlite" needs the data folder');
  const file = join(dataDir, BROKER_DB_FILE);
  try {
    return new SqlitePersistence({ file, maxQueuedPerClient: config.maxQueuedPerClient, store, log });
  } catch (err) {
    if (err instanceof PlinthError) throw err; // names the file and what to do already
    throw new Error(`broker.persistence: cannot open ${file}: ${(err as Error).message}`, { cause: err });
  }
}
