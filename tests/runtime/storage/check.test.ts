/**
 * Damage is found before a store serves (quick_check at open) and by `plinth check`
 * (integrity_check), on real SQLite files with a page overwritten by random bytes.
 */
import { Database } from "bun:sqlite";
import { describe, expect, test } from "bun:test";
import { closeSync, openSync, statSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { PlinthError } from "../../../runtime/errors";
import { BROKER_DB_FILE } from "../../../runtime/broker/persistence/index";
import { openBrokerDatabase } from "../../../runtime/broker/persistence/schema";
import { checkFile, problems, storeFiles } from "../../../runtime/storage/check";
import { openStore, storeOptions } from "../../../runtime/storage/open";
import { openDatabase } from "../../../runtime/worker/database";
import { tempDir } from "../../helpers/tmp";

const PAGE = 4096;

/** A WAL store like a service's, with an indexed table of `rows` rows, closed (its WAL checkpointed into the file). */
function makeStore(file: string, rows = 3_000): void {
  const db = new Database(file, { create: true, strict: true });
  db.exec("PRAGMA journal_mode = WAL; CREATE TABLE orders (id INTEGER PRIMARY KEY, sku TEXT NOT NULL, qty INTEGER NOT NULL); CREATE INDEX orders_by_sku ON orders (sku)");
  const insert = db.query("INSERT INTO orders (sku, qty) VALUES (?, ?)");
  db.transaction(() => {
    for (let i = 0; i < rows; i++) insert.run(`sku-${i}-${"x".repeat(40)}`, i);
  })();
  db.close();
}

/** Writes 4 KiB of random bytes over the middle page (its first byte no page type, so it is never a valid b-tree page by chance). */
function damageMiddlePage(file: string): number {
  const pages = Math.floor(statSync(file).size / PAGE);
  const page = Math.floor(pages / 2);
  const bytes = crypto.getRandomValues(new Uint8Array(PAGE));
  bytes[0] = 0;
  const fd = openSync(file, "r+");
  writeSync(fd, bytes, 0, PAGE, page * PAGE);
  closeSync(fd);
  return page + 1;
}

const thrown = (fn: () => unknown): PlinthError => {
  try {
    fn();
  } catch (err) {
    if (err instanceof PlinthError) return err;
    throw err;
  }
  throw new Error("did not throw");
};

const CHECKED = { durability: "full", quickCheckMaxBytes: 1024 * 1024 * 1024 } as const;

describe("quick_check at open", () => {
  test("a damaged page fails the open with PLT_STORAGE_CORRUPT naming the file and SQLite's first complaint", () => {
    using dir = tempDir("plinth-check");
    const file = dir.join("orders.sqlite");
    makeStore(file);
    const page = damageMiddlePage(file);
    const err = thrown(() => openStore(file, CHECKED));
    expect(err.code).toBe("PLT_STORAGE_CORRUPT");
    expect(err.message).toContain(`${file} is damaged (quick_check: `);
    expect(err.message).toMatch(new RegExp(`page ${page}\\b`));
    expect(err.message).toContain("restore it from a backup");
    expect(err.message).toContain("move it away");
  });

  test("without the check (quickCheckMaxBytes 0) the same file opens: the damage would be met while serving", () => {
    using dir = tempDir("plinth-check");
    const file = dir.join("orders.sqlite");
    makeStore(file);
    damageMiddlePage(file);
    openStore(file, { durability: "full", quickCheckMaxBytes: 0 }).close();
    openStore(file, { durability: "full" }).close();
  });

  test("a file larger than quickCheckMaxBytes is not checked, and the log says so", () => {
    using dir = tempDir("plinth-check");
    const file = dir.join("orders.sqlite");
    makeStore(file);
    damageMiddlePage(file);
    const warnings: Array<{ msg: string; fields?: Record<string, unknown> }> = [];
    const db = openStore(file, { durability: "full", quickCheckMaxBytes: statSync(file).size - 1 }, { warn: (msg, fields) => warnings.push({ msg, ...(fields ? { fields } : {}) }) });
    db.close();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.msg).toContain("not checked");
    expect(warnings[0]!.msg).toContain("plinth check");
    expect(warnings[0]!.fields).toMatchObject({ file, bytes: statSync(file).size });
  });

  test("a healthy file opens, and a new one too", () => {
    using dir = tempDir("plinth-check");
    makeStore(dir.join("orders.sqlite"));
    openStore(dir.join("orders.sqlite"), CHECKED).close();
    openStore(dir.join("new.sqlite"), CHECKED).close();
  });

  test("a file that is not SQLite fails with PLT_STORAGE_CORRUPT saying so, with or without the check", () => {
    using dir = tempDir("plinth-check");
    const file = dir.join("orders.sqlite");
    writeFileSync(file, "these are not the bytes of a SQLite database\n".repeat(200));
    for (const options of [CHECKED, { durability: "full" } as const]) {
      const err = thrown(() => openStore(file, options));
      expect(err.code).toBe("PLT_STORAGE_CORRUPT");
      expect(err.message).toStartWith(`${file} is not a SQLite database (file is not a database): restore it from a backup`);
    }
  });

  test("a service's database: damage is PLT_STORAGE_CORRUPT, not a failed migration", () => {
    using dir = tempDir("plinth-check");
    makeStore(dir.join("orders.sqlite"));
    damageMiddlePage(dir.join("orders.sqlite"));
    const plugin = { name: "orders", version: "1.0.0", migrations: ["CREATE TABLE IF NOT EXISTS extra (id INTEGER PRIMARY KEY)"] };
    const err = thrown(() => openDatabase(dir.path, plugin, CHECKED));
    expect(err.code).toBe("PLT_STORAGE_CORRUPT");
    expect(err.message).toContain(dir.join("orders.sqlite"));
    writeFileSync(dir.join("orders.sqlite"), "not sqlite");
    expect(thrown(() => openDatabase(dir.path, plugin, { durability: "full" })).code).toBe("PLT_STORAGE_CORRUPT");
  });

  test("the broker's store: damage is PLT_STORAGE_CORRUPT naming its file", () => {
    using dir = tempDir("plinth-check");
    const file = join(dir.path, BROKER_DB_FILE);
    openBrokerDatabase(file, { durability: "full" }).close();
    const db = new Database(file, { strict: true });
    const insert = db.query("INSERT INTO retained (topic, payload, meta) VALUES (?, ?, '{}')");
    db.transaction(() => {
      for (let i = 0; i < 2_000; i++) insert.run(`sensors/${i}`, Buffer.alloc(100, i));
    })();
    db.close();
    damageMiddlePage(file);
    const err = thrown(() => openBrokerDatabase(file, CHECKED));
    expect(err.code).toBe("PLT_STORAGE_CORRUPT");
    expect(err.message).toStartWith(`${file} is damaged (quick_check: `);
  });

  test("storeOptions carries data.quickCheckMaxBytes (to the workers and the broker)", () => {
    expect(storeOptions({ dir: "d", checkpointMs: 100, durability: "full", quickCheckMaxBytes: 123 }).quickCheckMaxBytes).toBe(123);
  });
});

describe("checkFile (plinth check)", () => {
  test("ok for a healthy file; for a damaged one its problems, bounded, the first naming the page and its table or index", () => {
    using dir = tempDir("plinth-check");
    const file = dir.join("orders.sqlite");
    makeStore(file, 6_000);
    expect(checkFile(file)).toEqual({ file, ok: true, problems: [] });
    const page = damageMiddlePage(file);
    const result = checkFile(file, "integrity_check", 3);
    expect(result.ok).toBe(false);
    expect(result.problems.length).toBeGreaterThan(0);
    expect(result.problems.length).toBeLessThanOrEqual(3);
    expect(result.problems[0]).toMatch(new RegExp(`^Tree \\d+ \\((table orders|index orders_by_sku)\\) page ${page}: `));
  });

  test("runs beside a writer that holds uncommitted work, and sees committed rows still in the WAL", () => {
    using dir = tempDir("plinth-check");
    const file = dir.join("orders.sqlite");
    makeStore(file);
    const writer = new Database(file, { strict: true });
    writer.exec("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0");
    writer.exec("INSERT INTO orders (sku, qty) VALUES ('in-wal', 1)");
    writer.exec("BEGIN; INSERT INTO orders (sku, qty) VALUES ('uncommitted', 1)");
    try {
      expect(checkFile(file)).toEqual({ file, ok: true, problems: [] });
      const reader = new Database(file, { readonly: true });
      expect(problems(reader, "quick_check")).toEqual([]);
      expect(reader.query("SELECT count(*) AS n FROM orders").get()).toEqual({ n: 3_001 });
      reader.close();
    } finally {
      writer.exec("ROLLBACK");
      writer.close();
    }
  });

  test("a file that is not SQLite, or missing, is a problem, not an exception", () => {
    using dir = tempDir("plinth-check");
    writeFileSync(dir.join("text.sqlite"), "not a database at all, but long enough to have a header\n".repeat(100));
    expect(checkFile(dir.join("text.sqlite"))).toEqual({ file: dir.join("text.sqlite"), ok: false, problems: ["file is not a database"] });
    expect(checkFile(dir.join("missing.sqlite")).ok).toBe(false);
  });

  test("storeFiles lists the folder's .sqlite files only: no WAL, lock, log record or partial file", () => {
    using dir = tempDir("plinth-check");
    for (const name of ["orders.sqlite", "orders.sqlite-wal", "orders.sqlite-shm", "orders.log.json", "plinth.lock", "_broker.sqlite", "auth.sqlite", "x.sqlite.partial"]) writeFileSync(dir.join(name), "");
    expect(storeFiles(dir.path)).toEqual([dir.join("_broker.sqlite"), dir.join("auth.sqlite"), dir.join("orders.sqlite")]);
  });
});
