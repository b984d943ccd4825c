/**
 * `npm run bench`: starts the compiled binary with the bench plugin and the
 * bare-Elysia baseline, drives each with the same closed-loop Bun client on
 * loopback (bounded in time), and prints requests/s, p50, p99 and ratios.
 * Load generator: this script's own fetch loop (recorded in the output).
 */
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY, ensureBinary } from "../helpers/binary";
import { spawnReady } from "./spawn";

const DURATION_MS = Number(process.env.BENCH_MS ?? 3_000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);

interface Result {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

async function load(name: string, url: string, init?: RequestInit): Promise<Result> {
  // warm-up
  for (let i = 0; i < 200; i++) await (await fetch(url, init)).arrayBuffer();
  const latencies: number[] = [];
  let errors = 0;
  const end = performance.now() + DURATION_MS;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        const res = await fetch(url, init);
        await res.arrayBuffer();
        if (!res.ok) errors++;
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))]!;
  return { name, rps: latencies.length / elapsed, p50: q(0.5), p99: q(0.99), errors };
}

ensureBinary();
const dir = mkdtempSync(join(tmpdir(), "plinth-bench-"));
cpSync(join(import.meta.dir, "plugins"), join(dir, "plugins"), { recursive: true });

const baseline = await spawnReady([process.execPath, join(import.meta.dir, "baselines/elysia.ts")], dir, /listening (http:\S+)/);
const baseUrl = baseline.text().match(/listening (http:\S+)/)![1]!;
const plinth = await spawnReady([BINARY, "run", "--port", "0", "--mqtt-port", "0", "--log-level", "info"], dir, /platform ready/);
const plinthUrl = plinth.text().match(/gateway listening url=(http:\S+)/)![1]!;

try {
  const bare = await load("bare Elysia GET (baseline)", `${baseUrl}/api/bench/echo`);
  const echo = await load("plinth GET /api/bench/echo", `${plinthUrl}/api/bench/echo`);
  const write = await load("plinth POST /api/bench/items (INSERT + event)", `${plinthUrl}/api/bench/items`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ v: "x" }),
  });
  const read = await load("plinth GET /api/bench/items/1", `${plinthUrl}/api/bench/items/1`);
  const noop = await load("plinth POST /api/bench/noop (no event)", `${plinthUrl}/api/bench/noop`, { method: "POST" });
  const tick = await load("plinth POST /api/bench/tick (1 durable event)", `${plinthUrl}/api/bench/tick`, { method: "POST" });

  console.log(`\nload generator: Bun fetch closed loop, ${CONCURRENCY} connections, ${DURATION_MS} ms per path, loopback`);
  console.log(`plinth start-up to ready (1 plugin + built-ins, compiled binary): ${plinth.readyMs.toFixed(0)} ms\n`);
  console.log("| path | req/s | p50 ms | p99 ms | errors | ratio to bare Elysia |");
  console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
  for (const r of [bare, echo, write, read, noop, tick]) {
    console.log(`| ${r.name} | ${r.rps.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.errors} | ${(r.rps / bare.rps).toFixed(2)} |`);
  }
  console.log(`\ndurable event cost: /tick runs at ${(tick.rps / noop.rps).toFixed(2)}× the rate of /noop`);

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
  console.log(`hot reload, file written → new version serving: median ${reloads[2]!.toFixed(0)} ms (min ${reloads[0]!.toFixed(0)}, max ${reloads[4]!.toFixed(0)}, 5 runs)`);
} finally {
  baseline.proc.kill();
  plinth.proc.kill();
  await Promise.all([baseline.proc.exited, plinth.proc.exited]);
  rmSync(dir, { recursive: true, force: true });
}
