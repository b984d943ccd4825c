/** Backup (VACUUM INTO beside the writers) and restore (into a stopped data folder) on real SQLite files. */
import { Database } from "bun:sqlite";
import { describe, expect, test } from "bun:test";
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, statSync, writeFileSync, writeSync } from "node:fs";
import { PlinthError } from "../../../runtime/errors";
import { backup, MANIFEST, restore } from "../../../runtime/storage/backup";
import { DataFolderLock } from "../../../runtime/storage/lock";
import { openStore } from "../../../runtime/storage/open";
import { tempDir } from "../../helpers/tmp";

/** A service-like store: WAL, a table of `rows` rows, user_version set (the broker's store keeps its schema version there). */
function makeStore(file: string, rows: number, sku = "apple"): Database {
  const db = new Database(file, { create: true, strict: true });
  db.exec("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; PRAGMA user_version = 3");
  db.exec("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY AUTOINCREMENT, sku TEXT NOT NULL)");
  const insert = db.query("INSERT INTO orders (sku) VALUES (?)");
  db.transaction(() => {
    for (let i = 0; i < rows; i++) insert.run(sku);
  })();
  return db;
}

/** The rows by sku, read as the platform opens a store (`served`: WAL switched on, as openStore does) or read-only. */
const rowsOf = (file: string, served = false): Array<{ sku: string; n: number }> => {
  const db = served ? openStore(file, { durability: "full" }) : new Database(file, { readonly: true });
  try {
    return db.query("SELECT sku, count(*) AS n FROM orders GROUP BY sku ORDER BY sku").all() as Array<{ sku: string; n: number }>;
  } finally {
    db.close();
  }
};

const userVersion = (file: string): number => {
  const db = new Database(file, { readonly: true });
  try {
    return (db.query("PRAGMA user_version").get() as { user_version: number }).user_version;
  } finally {
    db.close();
  }
};

const failure = (fn: () => unknown): Error => {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error("did not throw");
};

describe("backup", () => {
  test("copies every .sqlite as of its commits (rows still in the WAL included, uncommitted work not), and nothing else", async () => {
    using dir = tempDir("plinth-backup");
    const data = dir.join("data");
    mkdirSync(data);
    const orders = makeStore(`${data}/orders.sqlite`, 500); // kept open: its rows are in the WAL
    orders.exec("BEGIN; INSERT INTO orders (sku) VALUES ('uncommitted')");
    makeStore(`${data}/_broker.sqlite`, 10).close();
    makeStore(`${data}/auth.sqlite`, 1).close();
    for (const name of ["plinth.lock", "plinth.pid", "orders.log.json", "orders.log.json.tmp"]) writeFileSync(`${data}/${name}`, "{}");
    try {
      expect(statSync(`${data}/orders.sqlite-wal`).size).toBeGreaterThan(0);
      const result = backup(data, dir.join("backup"));
      expect(result.files.map((f) => f.file)).toEqual(["_broker.sqlite", "auth.sqlite", "orders.sqlite"].map((n) => dir.join("backup", n)));
      expect(readdirSync(dir.join("backup")).sort()).toEqual(["_broker.sqlite", "auth.sqlite", "orders.sqlite", MANIFEST]);
      expect(rowsOf(dir.join("backup/orders.sqlite"))).toEqual([{ sku: "apple", n: 500 }]);
      expect(userVersion(dir.join("backup/_broker.sqlite"))).toBe(3);
      const manifest = JSON.parse(await Bun.file(dir.join("backup", MANIFEST)).text());
      expect(manifest.files).toEqual(result.files.map((f) => ({ name: f.file.split("/").pop(), bytes: statSync(f.file).size })));
    } finally {
      orders.exec("ROLLBACK");
      orders.close();
    }
  });

  test("refuses a folder that already holds .sqlite files, and says so", () => {
    using dir = tempDir("plinth-backup");
    makeStore(dir.join("orders.sqlite"), 1).close();
    mkdirSync(dir.join("target"));
    writeFileSync(dir.join("target/old.sqlite"), "");
    const err = failure(() => backup(dir.path, dir.join("target")));
    expect(err.message).toBe(`backup folder ${dir.join("target")} already holds old.sqlite: choose an empty or new folder`);
    expect(readdirSync(dir.join("target"))).toEqual(["old.sqlite"]);
  });

  test("a backup that fails part way leaves no file that looks complete: no .sqlite, no manifest, no partial file", () => {
    using dir = tempDir("plinth-backup");
    const data = dir.join("data");
    mkdirSync(data);
    makeStore(`${data}/a.sqlite`, 10).close();
    writeFileSync(`${data}/b.sqlite`, "not a database, so copying it fails after a.sqlite was written\n".repeat(100));
    const err = failure(() => backup(data, dir.join("backup")));
    expect(err).toBeInstanceOf(PlinthError);
    expect((err as PlinthError).code).toBe("PLT_STORAGE_CORRUPT");
    expect(err.message).toContain(`${data}/b.sqlite`);
    expect(readdirSync(dir.join("backup"))).toEqual([]);
    expect(failure(() => restore(dir.join("backup"), dir.join("restored"))).message).toContain("is not a complete backup");
  });
});

describe("restore", () => {
  /** A data folder with a backup of it, then changed after the backup (new rows in a WAL a crash left behind, a log record, a service not in the backup). */
  function scenario(dir: ReturnType<typeof tempDir>) {
    const data = dir.join("data");
    mkdirSync(data);
    makeStore(`${data}/orders.sqlite`, 100).close();
    makeStore(`${data}/inventory.sqlite`, 7).close();
    backup(data, dir.join("backup"));
    // After the backup: more rows, left in a WAL as after kill -9 (copied while the writer still had it open).
    const writer = makeStore(`${data}/orders.sqlite`, 50, "pear");
    copyFileSync(`${data}/orders.sqlite-wal`, dir.join("crash-wal"));
    copyFileSync(`${data}/orders.sqlite`, dir.join("crash-main"));
    writer.close();
    copyFileSync(dir.join("crash-main"), `${data}/orders.sqlite`);
    copyFileSync(dir.join("crash-wal"), `${data}/orders.sqlite-wal`);
    writeFileSync(`${data}/orders.log.json`, "{}");
    writeFileSync(`${data}/inventory.log.json`, "{}");
    makeStore(`${data}/billing.sqlite`, 1).close();
    return data;
  }

  test("puts every file of the backup back: the old WAL, -shm and log record removed, stores not in the backup kept", () => {
    using dir = tempDir("plinth-restore");
    const data = scenario(dir);
    expect(rowsOf(`${data}/orders.sqlite`)).toEqual([{ sku: "apple", n: 100 }, { sku: "pear", n: 50 }]);
    const result = restore(dir.join("backup"), data);
    expect(result.files.map((f) => f.file)).toEqual([`${data}/inventory.sqlite`, `${data}/orders.sqlite`]);
    expect(result.kept).toEqual([`${data}/billing.sqlite`]);
    for (const gone of ["orders.sqlite-wal", "orders.sqlite-shm", "orders.log.json", "inventory.log.json", "orders.sqlite.restoring"]) expect(existsSync(`${data}/${gone}`)).toBe(false);
    expect(rowsOf(`${data}/orders.sqlite`, true)).toEqual([{ sku: "apple", n: 100 }]);
    expect(rowsOf(`${data}/inventory.sqlite`, true)).toEqual([{ sku: "apple", n: 7 }]);
    expect(userVersion(`${data}/orders.sqlite`)).toBe(3);
    // The folder is free again.
    expect(DataFolderLock.heldElsewhere(data)).toBe(false);
  });

  test("refused while another holder has the data folder's lock; nothing is touched", () => {
    using dir = tempDir("plinth-restore");
    const data = scenario(dir);
    const lock = DataFolderLock.acquire(data);
    try {
      const err = failure(() => restore(dir.join("backup"), data));
      expect((err as PlinthError).code).toBe("PLT_DATA_LOCKED");
      expect(existsSync(`${data}/orders.log.json`)).toBe(true);
      expect(existsSync(`${data}/orders.sqlite-wal`)).toBe(true);
    } finally {
      lock.release();
    }
  });

  test("a damaged file in the backup is found by quick_check before anything is replaced", () => {
    using dir = tempDir("plinth-restore");
    const data = dir.join("data");
    mkdirSync(data);
    makeStore(`${data}/a.sqlite`, 10).close();
    makeStore(`${data}/b.sqlite`, 3_000).close();
    backup(data, dir.join("backup"));
    const file = dir.join("backup/b.sqlite");
    const pages = statSync(file).size / 4096;
    const bytes = crypto.getRandomValues(new Uint8Array(4096));
    bytes[0] = 0;
    const fd = openSync(file, "r+");
    writeSync(fd, bytes, 0, 4096, Math.floor(pages / 2) * 4096);
    closeSync(fd);
    writeFileSync(`${data}/a.log.json`, "{}");
    const err = failure(() => restore(dir.join("backup"), data));
    expect((err as PlinthError).code).toBe("PLT_STORAGE_CORRUPT");
    expect(err.message).toContain(`backup file ${file} is damaged (quick_check: `);
    expect(existsSync(`${data}/a.log.json`)).toBe(true);
  });

  test("refuses a folder with no manifest (not written by plinth backup, or interrupted)", () => {
    using dir = tempDir("plinth-restore");
    mkdirSync(dir.join("copy"));
    makeStore(dir.join("copy/orders.sqlite"), 1).close();
    expect(failure(() => restore(dir.join("copy"), dir.join("data"))).message).toBe(`${dir.join("copy")} is not a complete backup (no readable ${MANIFEST}; plinth backup writes it last)`);
  });
});
