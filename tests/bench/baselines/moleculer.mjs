/**
 * Baseline: Moleculer 0.14 with moleculer-web, one local action (no transporter) doing a
 * better-sqlite3 INSERT and a SELECT of the row it wrote, on a file in WAL mode with
 * synchronous=NORMAL (as Plinth at durability "normal" and the other baselines). Runs under Node.js:
 * Bun does not load better-sqlite3's native addon. Prints "listening http://127.0.0.1:<port>";
 * POST /api/items {"v": "..."} answers the row.
 *
 * Plain JavaScript (Node.js 20 does not run TypeScript); the bench runs it with `node`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import Moleculer from "moleculer";
import ApiGateway from "moleculer-web";

const dataDir = mkdtempSync(join(tmpdir(), "plinth-baseline-moleculer-"));
const db = new Database(join(dataDir, "items.sqlite"));
db.pragma("journal_mode = WAL");
db.pragma("synchronous = NORMAL");
db.exec("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT NOT NULL)");
const insert = db.prepare("INSERT INTO items (v) VALUES (?)");
const select = db.prepare("SELECT * FROM items WHERE id = ?");

const broker = new Moleculer.ServiceBroker({ nodeID: "bench", logger: false, metrics: false, tracing: false });

broker.createService({
  name: "items",
  actions: {
    create: {
      params: { v: "string" },
      handler(ctx) {
        const { lastInsertRowid } = insert.run(ctx.params.v);
        return select.get(lastInsertRowid);
      },
    },
  },
});

const api = broker.createService({
  name: "api",
  mixins: [ApiGateway],
  settings: {
    port: 0,
    ip: "127.0.0.1",
    logRequest: null,
    logResponse: null,
    routes: [{ path: "/api", bodyParsers: { json: true }, aliases: { "POST /items": "items.create" }, mappingPolicy: "restrict" }],
  },
});

const stop = async () => {
  await broker.stop().catch(() => {});
  db.close();
  rmSync(dataDir, { recursive: true, force: true });
  process.exit(0);
};
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => void stop());

await broker.start();
console.log(`listening http://127.0.0.1:${api.server.address().port}`);
