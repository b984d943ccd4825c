/**
 * Call-policy overhead (part of `npm run bench`): the same action call, in one
 * process, through the full path (deadline + bulkhead + breaker + timeout, as
 * ctx.call and the gateway use it) and straight to the worker (host.request
 * with a timeout only). Interleaved rounds, same worker, same load.
 */
import { join } from "node:path";
import { tempDir } from "../helpers/tmp";
import { startInProcess } from "./inprocess";
import { median } from "./proc";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 12);
const CALLS = Number(process.env.BENCH_CALLS ?? 20_000);
const CONCURRENCY = 64;

using dir = tempDir("plinth-bench-calls");
const platform = await startInProcess(join(import.meta.dir, "plugins"), dir.join("data"));
const service = platform.loader.registry.services.get("bench")!;

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

const guarded = () => platform.loader.dispatcher.call(null, "bench.echo", 1);
const direct = () => service.host.request({ t: "action", action: "echo", params: 1, caller: null }, 5_000);
await run(guarded); // warm-up
await run(direct);
// Each round runs both paths back to back (in alternating order) and yields one ratio: the machine's
// drift between rounds (large on this shared VM) cancels within a pair; the median ratio is reported.
const rates = { guarded: [] as number[], direct: [] as number[] };
const ratios: number[] = [];
for (let i = 0; i < ROUNDS; i++) {
  const directFirst = i % 2 === 0;
  const first = await run(directFirst ? direct : guarded);
  const second = await run(directFirst ? guarded : direct);
  const [dd, g] = directFirst ? [first, second] : [second, first];
  rates.direct.push(dd);
  rates.guarded.push(g);
  ratios.push(g / dd);
}
// The policy layer alone, without the thread hop whose jitter swamps a few percent: the same
// guard (bulkhead + breaker, deadline arithmetic) around an already-settled call, per call.
const breakers = platform.loader.breakers;
const settled = Promise.resolve(1);
const bare = () => settled;
// As loader.call uses it: the call reports its own end (here at once), the layer adds no promise.
const layered = () => breakers.guardReported("bench", (report) => (report(), settled), "echo");
const perCallNs = async (fn: () => Promise<unknown>, n = 200_000) => {
  const t = performance.now();
  for (let i = 0; i < n; i++) await fn();
  return ((performance.now() - t) * 1e6) / n;
};
for (let i = 0; i < 3; i++) await perCallNs(layered, 50_000); // warm-up
const layerNs: number[] = [];
for (let i = 0; i < 5; i++) layerNs.push((await perCallNs(layered)) - (await perCallNs(bare)));
await platform.stop();

const [d, g, r] = [median(rates.direct), median(rates.guarded), median(ratios)];
console.log(`\ncall policies: ${CALLS} action calls × ${ROUNDS} paired rounds, ${CONCURRENCY} in flight, median calls/s`);
console.log("| path | calls/s | ratio |");
console.log("| --- | ---: | ---: |");
console.log(`| straight to the worker (timeout only) | ${d.toFixed(0)} | 1.00 |`);
console.log(`| deadline + bulkhead + breaker + timeout | ${g.toFixed(0)} | ${r.toFixed(3)} (median of per-round ratios; range ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}) |`);
console.log(`overhead, whole calls: ${((1 - r) * 100).toFixed(1)}% (target ≤ 5%)`);
const policyNs = median(layerNs);
const callNs = 1e9 / d;
console.log(`policy layer alone: ${policyNs.toFixed(0)} ns per call = ${((policyNs / callNs) * 100).toFixed(1)}% of a worker call's ${(callNs / 1000).toFixed(2)} µs (target ≤ 5%)`);
