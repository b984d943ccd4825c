/** SQLite stores for the data-folder commands' tests. */
import { Database } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

/** A healthy store `<dir>/<name>.sqlite` (the folder made if missing) with `rows` rows of 100 bytes. */
export function store(dir: string, name: string, rows = 3): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}.sqlite`);
  const db = new Database(file);
  db.run("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
  const insert = db.prepare("INSERT INTO t (v) VALUES (?)");
  for (let i = 0; i < rows; i++) insert.run(`${i}`.padEnd(100, "x"));
  db.close();
  return file;
}

/** The rows of `<file>`'s table. */
export function rowsOf(file: string): number {
  const db = new Database(file, { readonly: true });
  try {
    return (db.query("SELECT count(*) AS n FROM t").get() as { n: number }).n;
  } finally {
    db.close();
  }
}
