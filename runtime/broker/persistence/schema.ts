/**
 * The broker's SQLite file: opened like every store (storage/open.ts: WAL, the
 * configured durability) with its tables created once. `PRAGMA user_version`
 * records the schema version.
 */
import type { Database } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { Logger } from "../../log";
import { damageOf, openStore, type StoreOptions } from "../../storage/open";

const SCHEMA_V1 = `
  CREATE TABLE retained (
    topic TEXT PRIMARY KEY,
    payload BLOB,
    meta TEXT NOT NULL
  );

  -- One row per (client, filter) of a persistent session; QoS 0 rows are restored, never matched.
  CREATE TABLE subscriptions (
    id INTEGER PRIMARY KEY,
    client_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    qos INTEGER NOT NULL,
    options TEXT NOT NULL,
    UNIQUE (client_id, topic)
  );
  CREATE INDEX subscriptions_by_topic ON subscriptions (topic);

  -- Each client's queue, in order: QoS 1/2 publishes not yet acknowledged, and pubrels awaiting PUBCOMP.
  CREATE TABLE outgoing (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id TEXT NOT NULL,
    cmd TEXT NOT NULL,
    broker_id TEXT,
    broker_counter INTEGER,
    message_id INTEGER,
    payload BLOB,
    meta TEXT NOT NULL
  );
  CREATE INDEX outgoing_by_client ON outgoing (client_id);
  CREATE INDEX outgoing_by_origin ON outgoing (client_id, broker_id, broker_counter);
  CREATE INDEX outgoing_by_message_id ON outgoing (client_id, message_id);

  -- Publishes queued per client, kept by the triggers below, so bounding a queue needs no COUNT(*).
  CREATE TABLE queued (
    client_id TEXT PRIMARY KEY,
    n INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TRIGGER queued_insert AFTER INSERT ON outgoing WHEN new.cmd = 'publish' BEGIN
    INSERT INTO queued (client_id, n) VALUES (new.client_id, 1) ON CONFLICT (client_id) DO UPDATE SET n = n + 1;
  END;
  CREATE TRIGGER queued_delete AFTER DELETE ON outgoing WHEN old.cmd = 'publish' BEGIN
    UPDATE queued SET n = n - 1 WHERE client_id = old.client_id;
    DELETE FROM queued WHERE client_id = old.client_id AND n <= 0;
  END;
  CREATE TRIGGER queued_leave AFTER UPDATE OF cmd ON outgoing WHEN old.cmd = 'publish' AND new.cmd <> 'publish' BEGIN
    UPDATE queued SET n = n - 1 WHERE client_id = old.client_id;
    DELETE FROM queued WHERE client_id = old.client_id AND n <= 0;
  END;
  CREATE TRIGGER queued_enter AFTER UPDATE OF cmd ON outgoing WHEN old.cmd <> 'publish' AND new.cmd = 'publish' BEGIN
    INSERT INTO queued (client_id, n) VALUES (new.client_id, 1) ON CONFLICT (client_id) DO UPDATE SET n = n + 1;
  END;

  -- QoS 2 publishes received from a client, kept until its PUBREL.
  CREATE TABLE incoming (
    client_id TEXT NOT NULL,
    message_id INTEGER NOT NULL,
    payload BLOB,
    meta TEXT NOT NULL,
    PRIMARY KEY (client_id, message_id)
  );

  CREATE TABLE wills (
    client_id TEXT PRIMARY KEY,
    broker_id TEXT,
    payload BLOB,
    meta TEXT NOT NULL
  );
`;

const MIGRATIONS = [SCHEMA_V1];

/**
 * A damaged file, or one that is not SQLite, fails with PLT_STORAGE_CORRUPT (found by the quick_check
 * of `store.quickCheckMaxBytes`, or by reading it here); `log` hears of a file too big to check.
 */
export function openBrokerDatabase(file: string, store: StoreOptions, log?: Pick<Logger, "warn">): Database {
  if (file !== ":memory:") mkdirSync(dirname(file), { recursive: true });
  const db = openStore(file, store, log);
  try {
    const version = (db.query("PRAGMA user_version").get() as { user_version: number }).user_version;
    for (let v = version; v < MIGRATIONS.length; v++) {
      db.transaction(() => {
        db.exec(MIGRATIONS[v]!);
        db.exec(`PRAGMA user_version = ${v + 1}`);
      })();
    }
  } catch (err) {
    db.close();
    throw damageOf(file, err) ?? err;
  }
  return db;
}
