/**
 * `npm run bench`, overload part: goodput of one service under more connections than it needs.
 * The platform runs in a process of its own (this file, with `serve`), a plugin route answers a
 * small object, and wrk (one thread, in its own process) holds 400 → 4,000 connections open, each
 * sending its next request as soon as the last is answered. Per row: 2xx/s, 503/s (and how many
 * carried Retry-After), other answers, client timeouts, p99. Then the 2xx rate at 2× and 10× the
 * saturating connection count as a ratio to the saturated rate, from runs paired back to back
 * (alternating which goes first: they move far less with the machine's drift than separate rows).
 * Needs wrk (`apt-get install wrk`).
 */
import { join } from "node:path";
import { tempDir } from "../helpers/tmp";
import { startInProcess } from "./inprocess";
import { cpuTicks, median } from "./proc";
import { spawnReady } from "./spawn";

/** A route returning a small object: what the platform itself costs per request is all there is to it. */
const PLUGIN = `import { definePlugin } from "plinth";
export default definePlugin({ name: "ov", version: "1.0.0", routes: { "GET /small": () => ({ ok: true, n: 1 }) } });
`;

/**
 * Counts answers by class in each wrk thread, from WARMUP seconds on, and sums them at the end. The
 * first seconds do not count: thousands of connections opened at once overflow the listen backlog,
 * and the connections whose SYN was dropped only join a second or three later (the SYN retries).
 */
const WARMUP = 3;
const COUNTER = `local ffi = require("ffi")
ffi.cdef[[ typedef struct { long tv_sec; long tv_usec; } plinth_timeval; int gettimeofday(plinth_timeval *tv, void *tz); ]]
local tv = ffi.new("plinth_timeval")
local function now() ffi.C.gettimeofday(tv, nil); return tonumber(tv.tv_sec) + tonumber(tv.tv_usec) / 1e6 end
from = now() + ${WARMUP}
ok, shed, other, retry = 0, 0, 0, 0
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) from = now() + ${WARMUP} end
function response(status, headers, body)
  if now() < from then return end
  if status >= 200 and status < 300 then ok = ok + 1
  elseif status == 503 then
    shed = shed + 1
    if headers["Retry-After"] or headers["retry-after"] then retry = retry + 1 end
  else other = other + 1 end
end
function done(summary, latency, requests)
  local o, s, x, r, f = 0, 0, 0, 0, 0
  for _, t in ipairs(threads) do o = o + t:get("ok"); s = s + t:get("shed"); x = x + t:get("other"); r = r + t:get("retry"); f = t:get("from") end
  io.write(string.format("COUNTS %d %d %d %d %d %d %.3f\\n", o, s, x, r, summary.errors.timeout, latency:percentile(99), now() - f))
end
`;

interface Row {
  connections: number;
  okPerS: number;
  shedPerS: number;
  shed: number;
  /** Of the 503s, how many said when to retry. */
  retryAfter: number;
  other: number;
  timeouts: number;
  p99Ms: number;
  cpuPct: number;
  /** 2xx answers per second of the server's CPU time: what the machine's other load moves far less. */
  okPerCpuS: number;
}

async function main(): Promise<void> {
  const WRK = Bun.which("wrk");
  if (!WRK) {
    console.log("\noverload: skipped (needs wrk: apt-get install -y wrk)");
    return;
  }
  const SECONDS = Math.max(1, Math.round(Number(process.env.BENCH_MS ?? 3_000) / 1000));
  /** Where the service's 2xx rate stops growing with more connections (see the first rows). */
  const SATURATED = Number(process.env.BENCH_SATURATED ?? 400);
  const PAIRS = 3;
  const PAIR_S = 2;

  using dir = tempDir("plinth-bench-overload");
  const pluginsDir = dir.join("plugins");
  await Bun.write(join(pluginsDir, "ov.ts"), PLUGIN);
  await Bun.write(dir.join("count.lua"), COUNTER);
  const server = await spawnReady([process.execPath, import.meta.path, "serve", pluginsDir, dir.join("data")], dir.path, /listening (http:\S+)/);
  const url = `${/listening (http:\S+)/.exec(server.text())![1]}/api/ov/small`;

  const run = async (connections: number, seconds = SECONDS): Promise<Row> => {
    // Asynchronously: wrk runs in its own process while this one waits (and reads the server's CPU
    // time when the counting starts, and at the end).
    const wrk = Bun.spawn([WRK, "-t1", `-c${connections}`, `-d${WARMUP + seconds}s`, "--timeout", "2s", "-s", dir.join("count.lua"), url], { stdout: "pipe", stderr: "pipe" });
    const counting = Bun.sleep(WARMUP * 1000).then(() => cpuTicks(server.proc.pid));
    const out = await new Response(wrk.stdout).text();
    await wrk.exited;
    const ticks = cpuTicks(server.proc.pid) - (await counting);
    const m = /COUNTS (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) ([\d.]+)/.exec(out);
    if (!m) throw new Error(`wrk printed no counts:\n${out}`);
    const [ok, shed, other, retry, timeouts, p99Us, s] = m.slice(1).map(Number) as [number, number, number, number, number, number, number];
    const cpuPct = ticks / s;
    return { connections, okPerS: ok / s, shedPerS: shed / s, shed, retryAfter: retry, other, timeouts, p99Ms: p99Us / 1000, cpuPct, okPerCpuS: ticks > 0 ? ok / (ticks / 100) : 0 };
  };


  try {
    await run(50, 1); // warm
    const rows: Row[] = [];
    // Below the saturating count first (the rate stops growing there), then the overload rows.
    for (const c of [100, 200, SATURATED, 500, 1_000, 2_000, 4_000]) rows.push(await run(c));
    const saturated = rows.find((r) => r.connections === SATURATED)!;
    console.log(`\noverload: GET /api/ov/small (a plugin route, small object), wrk 1 thread, keep-alive connections, ${SECONDS} s counted per row after ${WARMUP} s for the connections to open (p99 over the whole run)`);
    console.log("| connections | 2xx/s | 503/s | 503 with Retry-After | other | client timeouts | p99 ms | server CPU % | 2xx per server CPU-s | 2xx / saturated row |");
    console.log("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (const r of rows) {
      console.log(
        `| ${r.connections} | ${r.okPerS.toFixed(0)} | ${r.shedPerS.toFixed(0)} | ${r.shed > 0 ? `${((r.retryAfter / r.shed) * 100).toFixed(0)}%` : "–"} | ${r.other} | ${r.timeouts} | ${r.p99Ms.toFixed(0)} | ${r.cpuPct.toFixed(0)} | ${r.okPerCpuS.toFixed(0)} | ${(r.okPerS / saturated.okPerS).toFixed(2)} |`,
      );
    }

    // 2× and 10× the saturating connections against the saturated rate, in back-to-back pairs.
    const ratios = async (times: number) => {
      const rate: number[] = [];
      const perCpu: number[] = [];
      for (let i = 0; i < PAIRS; i++) {
        const first = i % 2 === 0 ? SATURATED : SATURATED * times;
        const a = await run(first, PAIR_S);
        const b = await run(first === SATURATED ? SATURATED * times : SATURATED, PAIR_S);
        const [base, over] = first === SATURATED ? [a, b] : [b, a];
        rate.push(over.okPerS / base.okPerS);
        perCpu.push(over.okPerCpuS / base.okPerCpuS);
      }
      return { rate: rate.sort((x, y) => x - y), perCpu: perCpu.sort((x, y) => x - y) };
    };
    const show = (r: number[]) => `${median(r).toFixed(2)} (range ${r[0]!.toFixed(2)}–${r[r.length - 1]!.toFixed(2)})`;
    console.log(`\n2xx at 2× and 10× the saturating ${SATURATED} connections over the saturated rate, ${PAIRS} paired runs of ${PAIR_S} s counted (target ≥ 0.8): 2xx/s, and 2xx per server CPU-second`);
    for (const times of [2, 10]) {
      const { rate, perCpu } = await ratios(times);
      console.log(`  ${times}× (${SATURATED * times}): ${show(rate)}; per CPU-second ${show(perCpu)}`);
    }
  } finally {
    server.proc.kill();
    await server.proc.exited;
  }
}

if (process.argv[2] === "serve") {
  // The server side: the platform in this process, open routes, quiet logs.
  const [pluginsDir, dataDir] = process.argv.slice(3) as [string, string];
  const platform = await startInProcess(pluginsDir, dataDir, { auth: { defaultPolicy: "public" } });
  console.log(`listening ${platform.gateway.url}`);
  process.on("SIGTERM", () => void platform.stop().then(() => process.exit(0)));
} else {
  await main();
}
