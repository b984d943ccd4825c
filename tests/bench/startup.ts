/**
 * Start-up and memory (part of `npm run bench`): the compiled binary with 1,
 * 10 and 50 small plugins (each its own worker and SQLite file), from spawn
 * to "platform ready" (and the platform's own figure), RSS once idle, and the
 * RSS each plugin worker adds.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY, ensureBinary } from "../helpers/binary";
import { median, rssMiB } from "./proc";
import { spawnReady } from "./spawn";

const RUNS = 5;
const plugin = (i: number) => `import { definePlugin } from "plinth";
export default definePlugin({
  name: "p${i}", version: "1.0.0",
  migrations: ["CREATE TABLE t (x INTEGER)"],
  routes: { "GET /": (ctx) => ctx.db.query("SELECT COUNT(*) AS n FROM t").get() },
});
`;

ensureBinary();
const results: Array<{ n: number; wallMs: number; platformMs: number; rss: number }> = [];
for (const n of [1, 10, 50]) {
  const wall: number[] = [];
  const own: number[] = [];
  const rss: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const dir = mkdtempSync(join(tmpdir(), "plinth-startup-"));
    mkdirSync(join(dir, "plugins"));
    for (let i = 1; i <= n; i++) writeFileSync(join(dir, "plugins", `p${i}.ts`), plugin(i));
    const app = await spawnReady([BINARY, "run", "--port", "0", "--mqtt-port", "0", "--no-watch"], dir, /platform ready/);
    wall.push(app.readyMs);
    own.push(Number(/platform ready .*ms=(\d+)/.exec(app.text())?.[1]));
    await Bun.sleep(500);
    rss.push(rssMiB(app.proc.pid));
    app.proc.kill();
    await app.proc.exited;
    rmSync(dir, { recursive: true, force: true });
  }
  results.push({ n, wallMs: median(wall), platformMs: median(own), rss: median(rss) });
}

console.log(`\nstart-up, compiled binary, median of ${RUNS} (plugins + the built-in platform service)`);
console.log("| plugins | spawn → ready ms | platform's own ms | RSS idle MiB |");
console.log("| ---: | ---: | ---: | ---: |");
for (const r of results) console.log(`| ${r.n} | ${r.wallMs.toFixed(0)} | ${r.platformMs} | ${r.rss.toFixed(1)} |`);
const first = results[0]!;
const last = results[results.length - 1]!;
console.log(`RSS per plugin worker: ${((last.rss - first.rss) / (last.n - first.n)).toFixed(2)} MiB (target ≤ 5 MiB); 10 plugins ready in ${results[1]!.wallMs.toFixed(0)} ms from spawn (target ≤ 150 ms)`);
