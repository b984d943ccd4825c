/**
 * Call-policy overhead (part of `npm run bench`): the same action call, in one
 * process, through the full path (deadline + bulkhead + breaker + timeout, as
 * ctx.call and the gateway use it) and straight to the worker (host.request
 * with a timeout only). Interleaved rounds, same worker, same load.
 */
import { join } from "node:path";
import { loadConfig } from "../../config/load";
import { createLogger } from "../../runtime/log";
import { startPlatform } from "../../runtime/platform";
import { registerSdkModule } from "../../runtime/sdk/module";
import { tempDir } from "../helpers/tmp";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6);
const CALLS = Number(process.env.BENCH_CALLS ?? 20_000);
const CONCURRENCY = 64;

registerSdkModule();
using dir = tempDir("plinth-bench-calls");
const { config } = await loadConfig({
  overrides: {
    gateway: { port: 0 },
    broker: { port: 0 },
    plugins: { dir: join(import.meta.dir, "plugins"), watch: false },
    data: { dir: dir.join("data") },
    log: { level: "warn" },
  },
});
const platform = await startPlatform(config, createLogger({ level: "warn" }));
const service = platform.loader.services.get("bench")!;

async function run(call: () => Promise<unknown>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next++ < CALLS) await call();
    }),
  );
  return CALLS / ((performance.now() - started) / 1000);
}

const guarded = () => platform.loader.call(null, "bench.echo", 1);
const direct = () => service.host.request({ t: "action", action: "echo", params: 1, caller: null }, 5_000);
await run(guarded); // warm-up
await run(direct);
const rates = { guarded: [] as number[], direct: [] as number[] };
for (let i = 0; i < ROUNDS; i++) {
  rates.direct.push(await run(direct));
  rates.guarded.push(await run(guarded));
}
await platform.stop();

const median = (xs: number[]) => xs.toSorted((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const [d, g] = [median(rates.direct), median(rates.guarded)];
console.log(`\ncall policies: ${CALLS} action calls × ${ROUNDS} interleaved rounds, ${CONCURRENCY} in flight, median calls/s`);
console.log("| path | calls/s | ratio |");
console.log("| --- | ---: | ---: |");
console.log(`| straight to the worker (timeout only) | ${d.toFixed(0)} | 1.00 |`);
console.log(`| deadline + bulkhead + breaker + timeout | ${g.toFixed(0)} | ${(g / d).toFixed(3)} |`);
console.log(`overhead: ${((1 - g / d) * 100).toFixed(1)}% (target ≤ 5%)`);
