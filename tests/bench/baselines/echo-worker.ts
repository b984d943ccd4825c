/** The baselines' worker: echo, or INSERT/SELECT on its own SQLite file (WAL, synchronous=NORMAL). */
import { Database, type Statement } from "bun:sqlite";
import { join } from "node:path";

declare const self: Worker;
let insert: Statement;
let select: Statement;
// all(), not get(): get() leaves the statement open after its row, and with it a transaction, so the
// WAL could never start over and grew without bound (826 MB after 100,000 inserts), slowing every write.
const first = (rows: unknown[]) => rows[0] ?? null;

/** The first message names the folder for the database (the main thread removes it when it exits). */
function open(dir: string): void {
  const db = new Database(join(dir, "items.sqlite"), { create: true, strict: true });
  db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
  db.exec("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT NOT NULL)");
  insert = db.query("INSERT INTO items (v) VALUES (?) RETURNING id");
  select = db.query("SELECT * FROM items WHERE id = ?");
}

self.onmessage = (e: MessageEvent<{ id: number; op: string; v?: string; item?: number; dir?: string }>) => {
  const { id, op } = e.data;
  if (op === "open") return open(e.data.dir!);
  const value = op === "echo" ? { ok: true } : op === "insert" ? first(insert.all(e.data.v ?? "")) : first(select.all(e.data.item ?? 0));
  self.postMessage({ id, value });
};
