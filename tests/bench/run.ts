/**
 * `npm run bench`, HTTP part: the compiled binary with the bench plugins, and
 * in the same run the baselines it is compared with (bare Elysia; Elysia →
 * Worker echo; Elysia → Worker → SQLite), all driven by one load generator on
 * loopback. Prints req/s, p50, p99, server CPU and RSS, and each Plinth path's
 * ratio to its baseline; then the same ratios from short runs paired back to
 * back (they move far less with the machine's drift), the A → B chain cost
 * and hot-reload time. `BENCH_BEFORE=<binary>` (an earlier build of dist/plinth) adds, in the same run,
 * the echo and write paths of that build against this one, paired the same way. Plinth runs at
 * durability "normal", as the baselines' SQLite does (durability.ts measures "full").
 */
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SignJWT } from "jose";
import { BINARY, ensureBinary } from "../helpers/binary";
import { GENERATOR, load, type LoadResult } from "./load";
import { median } from "./proc";
import { spawnReady } from "./spawn";

const DURATION_MS = Number(process.env.BENCH_MS ?? 3_000);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);

ensureBinary();
const dir = mkdtempSync(join(tmpdir(), "plinth-bench-"));
cpSync(join(import.meta.dir, "plugins"), join(dir, "plugins"), { recursive: true });
// Routes are public unless they say otherwise (the bench's guarded route does); tokens are HS256.
// Durability "normal", like the baselines' SQLite (synchronous=NORMAL): this compares the platform's
// work with theirs; what "full" (the default) adds is measured by durability.ts.
const SECRET = "bench-secret-bench-secret-bench-secret";
const auth = `auth: { defaultPolicy: "public", jwt: { secret: "${SECRET}" } }`;
await Bun.write(join(dir, "platform.config.ts"), `export default { ${auth}, data: { durability: "normal" } };\n`);
const token = await new SignJWT({ roles: ["user"] }).setProtectedHeader({ alg: "HS256" }).setSubject("bench").setExpirationTime("1h").sign(new TextEncoder().encode(SECRET));

const elysia = await spawnReady([process.execPath, join(import.meta.dir, "baselines/elysia.ts")], dir, /listening (http:\S+)/);
const worker = await spawnReady([process.execPath, join(import.meta.dir, "baselines/worker-echo.ts")], dir, /listening (http:\S+)/);
const plinth = await spawnReady([BINARY, "run", "--port", "0", "--mqtt-port", "0", "--log-level", "info"], dir, /platform ready/);
const beforeDir = mkdtempSync(join(tmpdir(), "plinth-bench-before-"));
cpSync(join(dir, "plugins"), join(beforeDir, "plugins"), { recursive: true });
/** The earlier build at "normal" too; one older than data.durability refuses the setting (it wrote at "normal"). */
async function startBefore(binary: string) {
  const start = async (settings: string) => {
    await Bun.write(join(beforeDir, "platform.config.ts"), `export default { ${auth}${settings} };\n`);
    return spawnReady([binary, "run", "--port", "0", "--mqtt-port", "0", "--log-level", "info"], beforeDir, /platform ready/);
  };
  try {
    return await start(`, data: { durability: "normal" }`);
  } catch {
    return start("");
  }
}
const before = process.env.BENCH_BEFORE ? await startBefore(process.env.BENCH_BEFORE) : null;
const url = (p: { text(): string }, re: RegExp) => re.exec(p.text())![1]!;
const elysiaUrl = url(elysia, /listening (http:\S+)/);
const workerUrl = url(worker, /listening (http:\S+)/);
const plinthUrl = url(plinth, /gateway listening url=(http:\S+)/);

const post = { method: "POST" as const, body: JSON.stringify({ v: "x" }) };
const PAIRS = 6;
const PAIR_MS = 1_000;

/** Runs `a` and `b` back to back, `b` first on odd turns: [a's result, b's result]. */
async function pair<T>(a: () => Promise<T>, b: () => Promise<T>, turn: number): Promise<[T, T]> {
  if (turn % 2 === 0) {
    const ra = await a();
    return [ra, await b()];
  }
  const rb = await b();
  return [await a(), rb];
}

/** Ratios b/a of short runs paired back to back, alternating which goes first, sorted. */
async function pairedRatio(a: () => Promise<LoadResult>, b: () => Promise<LoadResult>): Promise<number[]> {
  const ratios: number[] = [];
  for (let i = 0; i < PAIRS; i++) {
    const [ra, rb] = await pair(a, b, i);
    ratios.push(rb.rps / ra.rps);
  }
  return ratios.sort((x, y) => x - y);
}
const show = (ratios: number[]) => `${median(ratios).toFixed(2)} (${ratios[0]!.toFixed(2)}–${ratios[ratios.length - 1]!.toFixed(2)})`;
const run = (target: string, pid: number, options = {}) => load(target, pid, { connections: CONNECTIONS, durationMs: DURATION_MS, ...options });

try {
  for (const u of [`${elysiaUrl}/api/bench/echo`, `${workerUrl}/echo`, `${plinthUrl}/api/bench/echo`]) await fetch(u); // warm
  const rows: Array<{ name: string; r: LoadResult; base?: LoadResult; target?: string }> = [];
  const bare = await run(`${elysiaUrl}/api/bench/echo`, elysia.proc.pid);
  rows.push({ name: "bare Elysia GET (reference)", r: bare });
  const wEcho = await run(`${workerUrl}/echo`, worker.proc.pid);
  rows.push({ name: "baseline: Elysia → Worker echo", r: wEcho });
  const echo = await run(`${plinthUrl}/api/bench/echo`, plinth.proc.pid);
  rows.push({ name: "plinth echo GET /api/bench/echo", r: echo, base: wEcho, target: "≥ 0.85" });
  const guardedRun = (durationMs: number) => run(`${plinthUrl}/api/bench/guarded?n=1`, plinth.proc.pid, { durationMs, headers: { authorization: `Bearer ${token}` } });
  const guarded = await guardedRun(DURATION_MS);
  rows.push({ name: "plinth GET /api/bench/guarded: JWT + rate limit + query validation (vs echo, policies off)", r: guarded, base: echo, target: "≥ 0.85" });
  const policyRatio = await pairedRatio(() => run(`${plinthUrl}/api/bench/echo`, plinth.proc.pid, { durationMs: PAIR_MS }), () => guardedRun(PAIR_MS));
  const staticRoute = await run(`${elysiaUrl}/static`, elysia.proc.pid);
  rows.push({ name: "bare Elysia static route", r: staticRoute });
  rows.push({ name: "plinth cache hit GET /api/bench/cached", r: await run(`${plinthUrl}/api/bench/cached`, plinth.proc.pid), base: staticRoute, target: "≥ 1.0" });
  const wWrite = await run(`${workerUrl}/items`, worker.proc.pid, post);
  rows.push({ name: "baseline: Elysia → Worker → SQLite INSERT", r: wWrite });
  rows.push({ name: "plinth write POST /api/bench/items (INSERT + event)", r: await run(`${plinthUrl}/api/bench/items`, plinth.proc.pid, post), base: wWrite, target: "≥ 0.9" });
  const wRead = await run(`${workerUrl}/items/1`, worker.proc.pid);
  rows.push({ name: "baseline: Elysia → Worker → SQLite SELECT", r: wRead });
  rows.push({ name: "plinth read GET /api/bench/items/1", r: await run(`${plinthUrl}/api/bench/items/1`, plinth.proc.pid), base: wRead });
  const noop = await run(`${plinthUrl}/api/bench/noop`, plinth.proc.pid, { method: "POST" });
  rows.push({ name: "plinth POST /api/bench/noop (no event)", r: noop });
  rows.push({ name: "plinth POST /api/bench/tick (1 durable event)", r: await run(`${plinthUrl}/api/bench/tick`, plinth.proc.pid, { method: "POST" }), base: noop });

  console.log(`\nload generator: ${GENERATOR}, ${CONNECTIONS} connections, ${DURATION_MS} ms per path, loopback, one machine`);
  console.log("| path | req/s | p50 ms | p99 ms | errors | server CPU % | server RSS MiB | ratio to its baseline | target |");
  console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
  for (const { name, r, base, target } of rows) {
    const ratio = base ? (r.rps / base.rps).toFixed(2) : "";
    console.log(`| ${name} | ${r.rps.toFixed(0)} | ${r.p50Ms.toFixed(3)} | ${r.p99Ms.toFixed(3)} | ${r.errors} | ${r.cpuPct.toFixed(0)} | ${r.rssMiB.toFixed(0)} | ${ratio} | ${target ?? ""} |`);
  }

  // The same ratios from short runs paired back to back: they move far less with the machine's drift.
  const paired = (path: string, base: string, options = {}) =>
    pairedRatio(() => run(base, worker.proc.pid, { durationMs: PAIR_MS, ...options }), () => run(path, plinth.proc.pid, { durationMs: PAIR_MS, ...options }));
  console.log(`\nratios from ${PAIRS} paired ${PAIR_MS} ms runs, alternating which goes first: median (range)`);
  console.log(`  echo / Elysia → Worker echo: ${show(await paired(`${plinthUrl}/api/bench/echo`, `${workerUrl}/echo`))} (target ≥ 0.85)`);
  console.log(`  write / Elysia → Worker → SQLite INSERT: ${show(await paired(`${plinthUrl}/api/bench/items`, `${workerUrl}/items`, post))} (target ≥ 0.9)`);
  console.log(`  read / Elysia → Worker → SQLite SELECT: ${show(await paired(`${plinthUrl}/api/bench/items/1`, `${workerUrl}/items/1`))}`);
  console.log(`  policies on / off (guarded / echo): ${show(policyRatio)} (target ≥ 0.85)`);
  if (before) {
    const beforeUrl = url(before, /gateway listening url=(http:\S+)/);
    const againstBefore = (path: string, options = {}) =>
      pairedRatio(() => run(`${beforeUrl}${path}`, before.proc.pid, { durationMs: PAIR_MS, ...options }), () => run(`${plinthUrl}${path}`, plinth.proc.pid, { durationMs: PAIR_MS, ...options }));
    console.log(`  this build / ${process.env.BENCH_BEFORE}: echo ${show(await againstBefore("/api/bench/echo"))}, write ${show(await againstBefore("/api/bench/items", post))} (target ≥ 0.97)`);
  }

  // A → B: the added latency of one more hop, measured without queueing (one connection), in pairs.
  const added: number[] = [];
  const hops: string[] = [];
  for (let i = 0; i < 3; i++) {
    const hop = (path: string) => run(`${plinthUrl}/api/bench/${path}`, plinth.proc.pid, { connections: 1, durationMs: PAIR_MS });
    const [single, chain] = await pair(() => hop("echo"), () => hop("chain"), i);
    added.push((chain.p50Ms - single.p50Ms) * 1000);
    hops.push(`${(chain.p50Ms * 1000).toFixed(0)} vs ${(single.p50Ms * 1000).toFixed(0)}`);
  }
  added.sort((a, b) => a - b);
  console.log(`\nA → B call chain, 1 connection, 3 paired ${PAIR_MS} ms runs (p50 µs, chain vs single hop: ${hops.join("; ")}): median +${median(added).toFixed(0)} µs (range +${added[0]!.toFixed(0)} to +${added[2]!.toFixed(0)}; target ≤ 60 µs)`);

  // Hot reload: time from rewriting the plugin file to the new version answering.
  const pluginFile = join(dir, "plugins", "bench.ts");
  const original = await Bun.file(pluginFile).text();
  const reloads: number[] = [];
  for (let version = 2; version <= 6; version++) {
    const changed = performance.now();
    await Bun.write(pluginFile, original.replace(`() => ({ ok: true })`, `() => ({ ok: ${version} })`));
    while (((await (await fetch(`${plinthUrl}/api/bench/echo`)).json()) as { ok: unknown }).ok !== version) await Bun.sleep(1);
    reloads.push(performance.now() - changed);
  }
  reloads.sort((a, b) => a - b);
  console.log(`hot reload, file written → new version serving: median ${reloads[2]!.toFixed(0)} ms (min ${reloads[0]!.toFixed(0)}, max ${reloads[4]!.toFixed(0)}, 5 runs; target < 500 ms)`);
} finally {
  const all = [elysia, worker, plinth, ...(before ? [before] : [])];
  for (const p of all) p.proc.kill();
  await Promise.all(all.map((p) => p.proc.exited));
  rmSync(dir, { recursive: true, force: true });
  rmSync(beforeDir, { recursive: true, force: true });
}
