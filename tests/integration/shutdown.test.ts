/** Graceful stop: in-flight requests finish, new ones are refused, databases are closed. */
import { expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Bulkhead } from "../../runtime/breaker/bulkhead";
import { boot } from "../helpers/boot";
import { eventually } from "../helpers/mqtt";
import { tempDir } from "../helpers/tmp";

/** POST / takes 300 ms; GET /inside says how many are in it. */
const slow = `import { definePlugin } from "plinth";
let inside = 0;
export default definePlugin({
  name: "slow", version: "1.0.0",
  migrations: ["CREATE TABLE done (n INTEGER)"],
  routes: {
    "POST /": async (ctx) => {
      inside++;
      await Bun.sleep(300);
      ctx.db.query("INSERT INTO done VALUES (1)").run();
      return { finished: true };
    },
    "GET /inside": () => ({ inside }),
  },
});`;

test("stop() lets an in-flight request finish, then refuses connections and closes the databases", async () => {
  const p = await boot({ files: { "slow.ts": slow } });
  const dataDir = p.dataDir;
  const inFlight = p.req("/api/slow", { method: "POST" });
  await eventually(async () => ((await (await p.req("/api/slow/inside")).json()) as { inside: number }).inside === 1); // in the handler
  const stopping = p.platform.stop();

  const res = await inFlight;
  expect(res.status).toBe(200);
  expect(await res.json()).toEqual({ finished: true });
  await stopping;

  await expect(fetch(`${p.url}/health`)).rejects.toThrow();
  // The worker closed its connection: SQLite checkpointed the WAL into the main file and removed it.
  expect(existsSync(join(dataDir, "slow.sqlite-wal"))).toBe(false);
  const db = new Database(join(dataDir, "slow.sqlite"), { readonly: true });
  try {
    expect(db.query("SELECT COUNT(*) AS n FROM done").get()).toEqual({ n: 1 });
  } finally {
    db.close();
  }
  await p.stop();
});

test("a start-up that fails after the workers were started (broker port in use) stops them: no database is left open", async () => {
  // The plugins' workers start before the broker does (they load while it starts).
  using data = tempDir("plinth-failed-start");
  const taken = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  try {
    const failed = await boot({ files: { "slow.ts": slow } }, { broker: { port: taken.port }, data: { dir: data.path } }).catch((err: unknown) => err);
    expect(failed).toMatchObject({ code: "PLT_LISTEN_FAILED" });
    // A worker left running would go on to open its database and hold it (its -wal file stays). A
    // window on purpose: that worker is the failure itself, and nothing signals how far it got.
    await Bun.sleep(500);
    const files = existsSync(data.path) ? readdirSync(data.path) : [];
    expect(files.filter((f) => f.endsWith("-wal"))).toEqual([]);
  } finally {
    taken.stop(true);
  }
});

test("requests the worker already had when it was stopped get their real answers, not a 503 for writes that committed", async () => {
  const counter = (v: number) => `import { definePlugin } from "plinth";
export default definePlugin({
  name: "counter", version: "1.0.${v}",
  migrations: ["CREATE TABLE hits (n INTEGER)"],
  routes: {
    "POST /slow": (ctx) => { const until = performance.now() + 800; while (performance.now() < until) {} ctx.db.query("INSERT INTO hits VALUES (1)").run(); return { ok: true }; },
    "POST /quick": (ctx) => { ctx.db.query("INSERT INTO hits VALUES (2)").run(); return { ok: true }; },
    "GET /": (ctx) => ctx.db.query("SELECT COUNT(*) AS n FROM hits").get(),
  },
});`;
  // The old version is stopped 50 ms after the new one takes over, while it still holds both requests.
  await using p = await boot({ files: { "counter.ts": counter(1) } }, { shutdown: { graceMs: 50 } });
  const slow = p.req("/api/counter/slow", { method: "POST" });
  const quick = p.req("/api/counter/quick", { method: "POST" });
  // Both handed to the service (its worker busy with the first): its bulkhead counts them.
  const bulkheads = (p.platform.loader.breakers as unknown as { bulkheads: Map<string, Bulkhead> }).bulkheads;
  await eventually(() => bulkheads.get("counter")?.load.active === 2);
  writeFileSync(join(p.pluginsDir, "counter.ts"), counter(2));
  expect([(await slow).status, (await quick).status]).toEqual([200, 200]);
  expect(await eventually(async () => ((await (await p.req("/api/counter")).json()) as { n: number }).n === 2, 5_000)).toBe(true);
});
