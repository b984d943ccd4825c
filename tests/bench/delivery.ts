/**
 * Event delivery to a subscribing plugin (part of `npm run bench`): one plugin commits bursts of
 * 100 events per request, another subscribes and writes a row per event (exactly once in effect:
 * its cursor moves in the same transaction). Reports events handled per second, end to end, in
 * one process.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { tempDir } from "../helpers/tmp";
import { startInProcess } from "./inprocess";

const BURSTS = Number(process.env.BENCH_BURSTS ?? 200);

using dir = tempDir("plinth-bench-delivery");
mkdirSync(dir.join("plugins"));
writeFileSync(dir.join("plugins", "src.ts"), `import { definePlugin } from "plinth";
export default definePlugin({ name: "src", version: "1.0.0",
  routes: { "POST /burst": (ctx) => { for (let i = 0; i < 100; i++) ctx.emit("made", { i }); } } });
`);
writeFileSync(dir.join("plugins", "sink.ts"), `import { definePlugin } from "plinth";
export default definePlugin({ name: "sink", version: "1.0.0",
  migrations: ["CREATE TABLE seen (id INTEGER PRIMARY KEY, i INTEGER)"],
  subscribe: { "events/src/#": (ctx) => void ctx.db.query("INSERT INTO seen (i) VALUES (?)").run(ctx.event.data.i) },
  routes: { "GET /count": (ctx) => ctx.db.query("SELECT COUNT(*) AS n FROM seen").get() } });
`);
const platform = await startInProcess(dir.join("plugins"), dir.join("data"), { auth: { defaultPolicy: "public" } });
const call = (path: string, init?: RequestInit) => platform.gateway.app.fetch(new Request(`http://127.0.0.1/api${path}`, init));
const handled = async () => ((await (await call("/sink/count")).json()) as { n: number }).n;

const started = performance.now();
for (let b = 0; b < BURSTS; b++) await call("/src/burst", { method: "POST" });
const postedMs = performance.now() - started;
while ((await handled()) < BURSTS * 100) await Bun.sleep(2);
const ms = performance.now() - started;
await platform.stop();

console.log(`\nevent delivery to a subscribing plugin (a row written per event, in one process):`);
console.log(`${BURSTS * 100} events (${BURSTS} commits of 100) handled in ${ms.toFixed(0)} ms: ${Math.round((BURSTS * 100) / (ms / 1000))} events/s (committing them took ${postedMs.toFixed(0)} ms)`);
