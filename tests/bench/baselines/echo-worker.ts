/** The baselines' worker: echo, or INSERT/SELECT on its own SQLite file (WAL, synchronous=NORMAL). */
import { Database } from "bun:sqlite";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

declare const self: Worker;
const db = new Database(join(mkdtempSync(join(tmpdir(), "plinth-baseline-")), "items.sqlite"), { create: true, strict: true });
db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
db.exec("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT NOT NULL)");
const insert = db.query("INSERT INTO items (v) VALUES (?) RETURNING id");
const select = db.query("SELECT * FROM items WHERE id = ?");

self.onmessage = (e: MessageEvent<{ id: number; op: string; v?: string; item?: number }>) => {
  const { id, op } = e.data;
  const value = op === "echo" ? { ok: true } : op === "insert" ? insert.get(e.data.v ?? "") : select.get(e.data.item ?? 0);
  self.postMessage({ id, value });
};
