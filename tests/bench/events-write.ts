/**
 * Write paths benchmark (part of `npm run bench`): what one event costs a write, and the write
 * against a Moleculer service doing the same work, in one run.
 *
 * - write: the compiled binary's POST /api/bench/insert-select (INSERT, then SELECT of the row, no event).
 * - write + event: POST /api/bench/insert-select-emit (the same and exactly one ctx.emit, published
 *   after the commit).
 * - Moleculer: tests/bench/baselines/moleculer.mjs under Node.js (Moleculer 0.14 + moleculer-web, a
 *   local action doing better-sqlite3 INSERT + SELECT). Skipped, with the reason printed, when Node.js,
 *   moleculer or better-sqlite3 (an optional dependency: its native build may fail) is not there.
 * - Elysia → Worker → SQLite INSERT (tests/bench/baselines/worker-echo.ts), the write baseline run.ts
 *   compares with, for write / baseline as there.
 *
 * Plinth at durability "normal", like the baselines' SQLite (WAL, synchronous=NORMAL). Every server
 * pinned to CPU 0 and wrk to CPU 1 when taskset is there (said in the output). wrk -t1 with
 * BENCH_CONNECTIONS (50) connections; BENCH_PAIRS (6) rounds of BENCH_PAIR_MS (1000) ms runs: in each
 * round every target runs once, the order turning from round to round, and each ratio is taken within
 * a round (runs seconds apart, so the machine's drift hits both alike): median (range).
 * BENCH_BINARY (default dist/plinth).
 */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY, OPEN_AUTH, ensureBinary } from "../helpers/binary";
import { GENERATOR, load, type LoadResult } from "./load";
import { PINNING, median, pinned } from "./proc";
import { spawnReady } from "./spawn";

const ROUNDS = Number(process.env.BENCH_PAIRS ?? 6);
const RUN_MS = Math.max(1_000, Number(process.env.BENCH_PAIR_MS ?? 1_000));
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const BODY = JSON.stringify({ v: "x" });

interface Target {
  name: string;
  url: string;
  pid: number;
  proc: { kill(): void; exited: Promise<number> };
}

const binary = process.env.BENCH_BINARY ?? BINARY;
if (!process.env.BENCH_BINARY) ensureBinary();
const dir = mkdtempSync(join(tmpdir(), "plinth-bench-events-write-"));
cpSync(join(import.meta.dir, "plugins"), join(dir, "plugins"), { recursive: true });
writeFileSync(join(dir, "platform.config.ts"), `export default { ${OPEN_AUTH}, data: { durability: "normal" } };\n`);
const running: Target[] = [];

/** Ten requests a connection before measuring: the JIT and SQLite's cache warm. */
async function warm(url: string): Promise<void> {
  const init = { method: "POST", body: BODY, headers: { "content-type": "application/json" } };
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      for (let i = 0; i < 10; i++) {
        const res = await fetch(url, init);
        await res.arrayBuffer();
        if (!res.ok) throw new Error(`${url} answered ${res.status}`);
      }
    }),
  );
}

/** Round `round`'s order: turned by one each round, and reversed every other round. */
function order<T>(items: T[], round: number): T[] {
  const turned = [...items.slice(round % items.length), ...items.slice(0, round % items.length)];
  return round % 2 ? turned.reverse() : turned;
}

/** The Moleculer baseline under Node.js, or why it cannot run here. */
async function startMoleculer(): Promise<{ target: Target; node: string } | { skip: string }> {
  const node = Bun.which("node");
  if (!node) return { skip: "Node.js (node) is not on PATH" };
  try {
    const { proc, text } = await spawnReady(pinned(0, [node, join(import.meta.dir, "baselines/moleculer.mjs")]), dir, /listening (http:\S+)/);
    const version = Bun.spawnSync([node, "--version"]).stdout.toString().trim();
    return { target: { name: "Moleculer 0.14 + moleculer-web, better-sqlite3 INSERT + SELECT", url: `${/listening (http:\S+)/.exec(text())![1]!}/api/items`, pid: proc.pid, proc }, node: version };
  } catch (error) {
    const text = (error as Error).message;
    const reason = /Cannot find (?:package|module) '[^']+'/.exec(text)?.[0] ?? /Error: .*/.exec(text)?.[0] ?? text.split("\n").slice(0, 3).join(" ");
    return { skip: `${reason} (npm install brings moleculer and moleculer-web; better-sqlite3 is optional and needs its native build)` };
  }
}

const f = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : "–");
const spread = (xs: number[], digits = 2) => {
  const sorted = xs.toSorted((a, b) => a - b);
  return `${f(median(sorted), digits)} (${f(sorted[0]!, digits)}–${f(sorted.at(-1)!, digits)})`;
};

try {
  const plinth = await spawnReady(pinned(0, [binary, "run", "--port", "0", "--mqtt-port", "0", "--no-watch", "--log-level", "info"]), dir, /platform ready/);
  const http = /gateway listening url=(http:\S+)/.exec(plinth.text())![1]!;
  const write: Target = { name: "plinth write: POST /api/bench/insert-select (INSERT + SELECT)", url: `${http}/api/bench/insert-select`, pid: plinth.proc.pid, proc: plinth.proc };
  const event: Target = { name: "plinth write + event: POST /api/bench/insert-select-emit (INSERT + SELECT + one ctx.emit)", url: `${http}/api/bench/insert-select-emit`, pid: plinth.proc.pid, proc: plinth.proc };
  running.push(write);
  const worker = await spawnReady(pinned(0, [process.execPath, join(import.meta.dir, "baselines/worker-echo.ts")]), dir, /listening (http:\S+)/);
  const baseline: Target = { name: "baseline: Elysia → Worker → SQLite INSERT", url: `${/listening (http:\S+)/.exec(worker.text())![1]!}/items`, pid: worker.proc.pid, proc: worker.proc };
  running.push(baseline);
  const moleculer = await startMoleculer();
  if ("target" in moleculer) running.push(moleculer.target);
  const targets = [write, event, ...("target" in moleculer ? [moleculer.target] : []), baseline];
  for (const t of targets) await warm(t.url);

  const results = new Map<Target, LoadResult[]>(targets.map((t) => [t, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const t of order(targets, round)) {
      results.get(t)!.push(await load(t.url, t.pid, { method: "POST", body: BODY, connections: CONNECTIONS, durationMs: RUN_MS, cpu: 1 }));
    }
  }
  /** Per round, b's req/s over a's. */
  const ratios = (b: Target, a: Target) => results.get(b)!.map((r, i) => r.rps / results.get(a)![i]!.rps);

  console.log(`\nwrite paths: ${GENERATOR}, ${CONNECTIONS} connections, ${ROUNDS} rounds of ${RUN_MS} ms runs, targets taking turns; ${PINNING}`);
  console.log(`Plinth: ${binary}, durability "normal"; ${"target" in moleculer ? `Moleculer under Node.js ${moleculer.node}` : `Moleculer skipped: ${moleculer.skip}`}`);
  console.log("| path | req/s median (range) | p50 ms | p99 ms | errors | server CPU % |");
  console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
  for (const t of targets) {
    const runs = results.get(t)!;
    const m = (pick: (r: LoadResult) => number) => median(runs.map(pick));
    console.log(`| ${t.name} | ${spread(runs.map((r) => r.rps), 0)} | ${f(m((r) => r.p50Ms))} | ${f(m((r) => r.p99Ms))} | ${runs.reduce((n, r) => n + r.errors, 0)} | ${f(m((r) => r.cpuPct), 0)} |`);
  }
  const eventOverWrite = ratios(event, write);
  console.log(`\nratios within a round, median (range) of ${ROUNDS}`);
  console.log("| ratio | median (range) | target |");
  console.log("| --- | ---: | --- |");
  console.log(`| write + event / write | ${spread(eventOverWrite)} | ≥ 0.9 |`);
  if ("target" in moleculer) {
    console.log(`| write + event / Moleculer write | ${spread(ratios(event, moleculer.target))} | ≥ 3.5 |`);
    console.log(`| write / Moleculer write | ${spread(ratios(write, moleculer.target))} | |`);
  } else {
    console.log(`| write + event / Moleculer write | skipped: ${moleculer.skip} | ≥ 3.5 |`);
  }
  console.log(`| write / Elysia → Worker → SQLite INSERT | ${spread(ratios(write, baseline))} | ≥ 0.9 |`);
  console.log(`| write + event / Elysia → Worker → SQLite INSERT | ${spread(ratios(event, baseline))} | |`);
  console.log(`write + event / write, each round: ${eventOverWrite.map((r) => f(r)).join(", ")}; spread ${f(Math.max(...eventOverWrite) - Math.min(...eventOverWrite))}`);
} finally {
  for (const t of running) t.proc.kill();
  await Promise.all(running.map((t) => t.proc.exited));
  rmSync(dir, { recursive: true, force: true });
}
