/**
 * Durability benchmark (part of `npm run bench`): what `data.durability` costs, in one run. The
 * compiled binary runs four times with the bench plugins: durability "full" and "normal", each with
 * the worker's group commit on (workers.groupCommitMs at its default) and off (0).
 *
 * - HTTP: POST /api/bench/write (an INSERT) and POST /api/bench/items (the INSERT and one event),
 *   wrk with BENCH_CONNECTIONS connections. ROUNDS rounds of 1 s runs; in each round every server
 *   runs once, the order turning from round to round, and each ratio is taken within a round (runs
 *   seconds apart, so the machine's drift hits both alike): median (range). req/s: median (range) of
 *   the rounds; p50, p99 and server CPU: medians.
 * - One connection: the write path's p50 at full and at normal, the latency of a commit alone.
 * - Broker: QoS 1 ingest with one persistent session offline (every message stored before its
 *   PUBACK; tests/bench/broker-load.ts) at full and at normal, taking turns.
 *
 * BENCH_BEFORE=<an earlier build of the binary> joins every round at its own defaults; this build's
 * default (full, group commit on) and this build at "normal" are compared with it.
 * BENCH_BINARY (default dist/plinth), BENCH_ROUNDS (default 5), BENCH_CONNECTIONS (default 50).
 */
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY, OPEN_AUTH, ensureBinary } from "../helpers/binary";
import { GENERATOR, load, type LoadResult } from "./load";
import { cpuTicks, median } from "./proc";
import { spawnReady } from "./spawn";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const RUN_MS = 1_000;
const LONE_ROUNDS = 3;
const INGEST = { rounds: 3, warmupMs: 500, durationMs: 1_500, window: 1_000, payload: 64 };
const BODY = JSON.stringify({ v: "x" });
const PATHS = [
  { name: "write (INSERT)", path: "/api/bench/write" },
  { name: "write + event (INSERT + ctx.emit)", path: "/api/bench/items" },
];

interface Server {
  name: string;
  http: string;
  mqtt: string;
  pid: number;
  proc: { kill(): void; exited: Promise<number> };
}

const binary = process.env.BENCH_BINARY ?? BINARY;
if (!process.env.BENCH_BINARY) ensureBinary();
const root = mkdtempSync(join(tmpdir(), "plinth-bench-durability-"));
const servers: Server[] = [];

/** Starts `bin` in a folder of its own (its own data) with the bench plugins and `settings` in its config. */
async function start(name: string, bin: string, settings: string): Promise<Server> {
  const dir = join(root, String(servers.length));
  mkdirSync(dir);
  cpSync(join(import.meta.dir, "plugins"), join(dir, "plugins"), { recursive: true });
  writeFileSync(join(dir, "platform.config.ts"), `export default { ${OPEN_AUTH}, ${settings} };\n`);
  const { proc, text } = await spawnReady([bin, "run", "--port", "0", "--mqtt-port", "0", "--no-watch", "--log-level", "info"], dir, /platform ready/);
  const server = {
    name,
    http: /gateway listening url=(http:\S+)/.exec(text())![1]!,
    mqtt: /broker listening url=(mqtt:\S+)/.exec(text())![1]!,
    pid: proc.pid,
    proc,
  };
  servers.push(server);
  return server;
}

/** Ten requests a connection before measuring: the JIT and SQLite's cache warm. */
async function warm(url: string): Promise<void> {
  const init = { method: "POST", body: BODY, headers: { "content-type": "application/json" } };
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      for (let i = 0; i < 10; i++) await (await fetch(url, init)).arrayBuffer();
    }),
  );
}

/** Round `round`'s order: turned by one each round, and reversed every other round. */
function order<T>(items: T[], round: number): T[] {
  const turned = [...items.slice(round % items.length), ...items.slice(0, round % items.length)];
  return round % 2 ? turned.reverse() : turned;
}

/** QoS 1 ingest with one offline persistent session against `server`: acknowledged messages per second and the broker's CPU. */
async function ingest(server: Server): Promise<{ rate: number; p99: number; cpuPct: number }> {
  const { warmupMs, durationMs, window, payload } = INGEST;
  const args = [server.mqtt, "1", "1", warmupMs, durationMs, window, payload].map(String);
  const proc = Bun.spawn([process.execPath, join(import.meta.dir, "broker-load.ts"), "ingest", ...args], { stdout: "pipe", stderr: "inherit" });
  await Bun.sleep(warmupMs + 300); // the session, the connection, the warm-up
  const ticks = cpuTicks(server.pid);
  const started = performance.now();
  const out = await new Response(proc.stdout).text();
  const cpuPct = ((cpuTicks(server.pid) - ticks) / (performance.now() - started)) * 1000;
  if ((await proc.exited) !== 0) throw new Error(`ingest against ${server.name} failed: ${out}`);
  const { rate, p99 } = JSON.parse(out.trim().split("\n").pop()!) as { rate: number; p99: number };
  return { rate, p99, cpuPct };
}

const f = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : "–");
const spread = (xs: number[], digits = 2) => {
  const sorted = xs.toSorted((a, b) => a - b);
  return `${f(median(sorted), digits)} (${f(sorted[0]!, digits)}–${f(sorted.at(-1)!, digits)})`;
};

try {
  const fullGroup = await start("full, group commit on", binary, `data: { durability: "full" }`);
  const fullAlone = await start("full, group commit off", binary, `data: { durability: "full" }, workers: { groupCommitMs: 0 }`);
  const normalGroup = await start("normal, group commit on", binary, `data: { durability: "normal" }`);
  const normalAlone = await start("normal, group commit off", binary, `data: { durability: "normal" }, workers: { groupCommitMs: 0 }`);
  // An earlier build at its own defaults (one older than data.durability wrote at "normal").
  const before = process.env.BENCH_BEFORE ? await start("before (BENCH_BEFORE)", process.env.BENCH_BEFORE, `data: {}`) : null;
  // Each compared pair sits side by side in the order (before between the two it is compared with).
  const targets = before ? [fullGroup, before, normalGroup, normalAlone, fullAlone] : [fullGroup, normalGroup, normalAlone, fullAlone];
  for (const s of targets) for (const { path } of PATHS) await warm(`${s.http}${path}`);

  const results = new Map<string, LoadResult[]>(); // by path and server, one per round
  const key = (path: string, s: Server) => `${path} ${s.name}`;
  for (const { path } of PATHS) {
    for (let round = 0; round < ROUNDS; round++) {
      for (const s of order(targets, round)) {
        const r = await load(`${s.http}${path}`, s.pid, { method: "POST", body: BODY, connections: CONNECTIONS, durationMs: RUN_MS });
        results.set(key(path, s), [...(results.get(key(path, s)) ?? []), r]);
      }
    }
  }
  /** Per round, b's req/s over a's. */
  const ratios = (path: string, a: Server, b: Server) => {
    const ra = results.get(key(path, a))!;
    return results.get(key(path, b))!.map((r, i) => r.rps / ra[i]!.rps);
  };

  // A commit alone: one connection, nothing to share a commit with.
  const lone = new Map<Server, number[]>([
    [fullGroup, []],
    [normalGroup, []],
  ]);
  for (let round = 0; round < LONE_ROUNDS; round++) {
    for (const s of order([fullGroup, normalGroup], round)) {
      lone.get(s)!.push((await load(`${s.http}/api/bench/write`, s.pid, { method: "POST", body: BODY, connections: 1, durationMs: RUN_MS })).p50Ms * 1000);
    }
  }

  // The broker's store: group commit is its own (broker/persistence/commit.ts), so one server per level.
  const brokers = before ? [fullGroup, normalGroup, before] : [fullGroup, normalGroup];
  const ingested = new Map<Server, Array<{ rate: number; p99: number; cpuPct: number }>>(brokers.map((s) => [s, []]));
  for (let round = 0; round < INGEST.rounds; round++) for (const s of order(brokers, round)) ingested.get(s)!.push(await ingest(s));

  console.log(`\ndurability: ${GENERATOR}, ${CONNECTIONS} connections, ${ROUNDS} rounds of ${RUN_MS} ms runs, servers taking turns; req/s median (range), p50, p99 and server CPU medians`);
  console.log("| path | server | req/s | p50 ms | p99 ms | server CPU % |");
  console.log("| --- | --- | ---: | ---: | ---: | ---: |");
  for (const { name, path } of PATHS) {
    for (const s of [fullGroup, fullAlone, normalGroup, normalAlone, ...(before ? [before] : [])]) {
      const runs = results.get(key(path, s))!;
      const m = (pick: (r: LoadResult) => number) => median(runs.map(pick));
      console.log(`| ${name} | ${s.name} | ${spread(runs.map((r) => r.rps), 0)} | ${f(m((r) => r.p50Ms))} | ${f(m((r) => r.p99Ms))} | ${f(m((r) => r.cpuPct), 0)} |`);
    }
  }
  console.log(`\nratios within a round, median (range) of ${ROUNDS}`);
  const beforeHead = before ? " this build's default (full, group on) / before | this build at normal / before |" : "";
  console.log(`| path | full / normal, group on | full / normal, group off | group on / off, full | group on / off, normal |${beforeHead}`);
  console.log(`| --- | ---: | ---: | ---: | ---: |${before ? " ---: | ---: |" : ""}`);
  for (const { name, path } of PATHS) {
    const cells = [
      ratios(path, normalGroup, fullGroup),
      ratios(path, normalAlone, fullAlone),
      ratios(path, fullAlone, fullGroup),
      ratios(path, normalAlone, normalGroup),
      ...(before ? [ratios(path, before, fullGroup), ratios(path, before, normalGroup)] : []),
    ];
    console.log(`| ${name} | ${cells.map((c) => spread(c)).join(" | ")} |`);
  }
  const loneFull = median(lone.get(fullGroup)!);
  const loneNormal = median(lone.get(normalGroup)!);
  console.log(`\nwrite, 1 connection, p50 (median of ${LONE_ROUNDS} runs each, alternating): full ${loneFull.toFixed(0)} µs, normal ${loneNormal.toFixed(0)} µs: a commit alone costs +${(loneFull - loneNormal).toFixed(0)} µs at full`);
  console.log(`\nbroker QoS 1 ingest, 1 persistent session offline (stored before PUBACK), at most ${INGEST.window} unacknowledged, ${INGEST.payload}-byte payloads; median (range) of ${INGEST.rounds} runs of ${INGEST.durationMs} ms, taking turns`);
  console.log("| server | acknowledged msg/s | p99 ms | broker CPU % |");
  console.log("| --- | ---: | ---: | ---: |");
  for (const s of brokers) {
    const runs = ingested.get(s)!;
    console.log(`| ${s.name} | ${spread(runs.map((r) => r.rate), 0)} | ${f(median(runs.map((r) => r.p99)))} | ${f(median(runs.map((r) => r.cpuPct)), 0)} |`);
  }
  const full = ingested.get(fullGroup)!;
  const perRound = ingested.get(normalGroup)!.map((r, i) => full[i]!.rate / r.rate);
  console.log(`  full / normal, within a round: ${spread(perRound)}`);
} finally {
  for (const s of servers) s.proc.kill();
  await Promise.all(servers.map((s) => s.proc.exited));
  rmSync(root, { recursive: true, force: true });
}
