/**
 * Broker benchmark (part of `npm run bench`): the same MQTT load, in one run,
 * against Plinth's embedded broker (the compiled binary, no plugins; with its
 * SQLite session store, the default, and with broker.persistence "memory") and
 * bare aedes (the same version) on Bun, on node:net as aedes documents it and
 * on Plinth's Bun.listen bridge (runtime/broker/tcp.ts), which isolates the
 * transport from the rest of the platform.
 *
 * - Load: tests/bench/broker-load.ts in a process of its own (one publisher,
 *   1 or 10 subscribers, QoS 0 and 1, at most BENCH_WINDOW messages in flight,
 *   BENCH_PAYLOAD bytes each). Latency: a timestamp in the payload to receipt.
 * - Ingest: one publisher, QoS 1 (and 2), at most BENCH_WINDOW unacknowledged;
 *   0, 1 or 10 persistent sessions offline, so each message is stored for each
 *   before it is acknowledged. Rate: PUBACKs (PUBCOMPs) per second.
 * - Broker: CPU (utime + stime over the measured window) and peak RSS from /proc.
 * - Idle: RSS with 1,000 idle connections open (first, on fresh brokers).
 * Brokers take turns per row, so drift on the machine hits all of them alike.
 *
 * Plinth against mosquitto (first, its own pair of brokers): Debian's mosquitto 2.0 (tests/helpers/mosquitto.ts;
 * skipped with the reason printed when it is not installed) and the binary, each pinned to CPU 0 and the
 * load to CPU 1 (taskset, when there). QoS 0 and 1, 1 → 1 and 1 → 10, 64-byte payloads, the publisher
 * limited to BENCH_VS_WINDOW (100) messages in flight; BENCH_VS_ROUNDS (3) runs of BENCH_VS_MS (2000) a
 * row and broker, the brokers taking turns (the first turning each round): delivered msg/s, the broker's
 * CPU per delivered message (utime + stime from /proc over the measured window), the load generator's
 * own CPU (to show it is not the bottleneck), and RSS per idle connection (1,000 idle connections).
 *
 * BENCH_MS (measured time per row, default 2500), BENCH_BINARY (default dist/plinth),
 * BENCH_BEFORE (another build of the binary: measured too, and each row's ratio to it printed),
 * BENCH_ONLY=ingest (the ingest rows only; ingest-ab: and only this build and BENCH_BEFORE; mosquitto: the
 * mosquitto comparison only), BENCH_ROUNDS (ingest runs per target and row, taking
 * turns; default 2: the median is printed, and each run).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY, ensureBinary } from "../helpers/binary";
import { type Mosquitto, mosquittoMissing, mosquittoVersion, startMosquitto } from "../helpers/mosquitto";
import { PINNING, cpuTicks, measuredLoad, median, pinned, rssMiB } from "./proc";
import { spawnReady } from "./spawn";

const DURATION_MS = Number(process.env.BENCH_MS ?? 2_500);
const WARMUP_MS = 500;
const WINDOW = Number(process.env.BENCH_WINDOW ?? 1_000);
const PAYLOAD = Number(process.env.BENCH_PAYLOAD ?? 64);
const IDLE_CONNECTIONS = 1_000;
const LOAD = join(import.meta.dir, "broker-load.ts");

interface Target {
  name: string;
  url: string;
  pid: number;
  proc: { kill(): void; exited: Promise<number> };
}

interface Flow {
  rate: number;
  p50: number;
  p99: number;
  lost: number;
  cpuPct: number;
  rssMiB: number;
}


/** Runs the load (`mode`: flow or ingest) against the target, measuring the target's CPU and RSS meanwhile. */
async function flow(target: Target, qos: number, n: number, mode = "flow"): Promise<Flow> {
  const proc = Bun.spawn(
    [process.execPath, LOAD, mode, target.url, String(qos), String(n), String(WARMUP_MS), String(DURATION_MS), String(WINDOW), String(PAYLOAD)],
    { stdout: "pipe", stderr: "inherit" },
  );
  let peak = rssMiB(target.pid);
  const sampler = setInterval(() => (peak = Math.max(peak, rssMiB(target.pid))), 100);
  await Bun.sleep(WARMUP_MS + 300); // connections, subscriptions, warm-up
  const ticks = cpuTicks(target.pid);
  const started = performance.now();
  const out = await new Response(proc.stdout).text();
  const seconds = (performance.now() - started) / 1000;
  const cpuPct = ((cpuTicks(target.pid) - ticks) / 100 / seconds) * 100;
  clearInterval(sampler);
  if ((await proc.exited) !== 0) throw new Error(`load against ${target.name} failed: ${out}`);
  const result = JSON.parse(out.trim().split("\n").pop()!) as Omit<Flow, "cpuPct" | "rssMiB">;
  return { ...result, cpuPct, rssMiB: Math.max(peak, rssMiB(target.pid)) };
}

async function idleRss(target: Target, wrap: (cmd: string[]) => string[] = (cmd) => cmd): Promise<{ before: number; after: number }> {
  const before = rssMiB(target.pid);
  const proc = Bun.spawn(wrap([process.execPath, LOAD, "idle", target.url, String(IDLE_CONNECTIONS)]), { stdout: "pipe", stderr: "inherit" });
  const reader = proc.stdout.getReader();
  let text = "";
  while (!/connected \d+/.test(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`idle connections to ${target.name} failed: ${text}`);
    text += new TextDecoder().decode(value);
  }
  await Bun.sleep(1_000);
  const after = rssMiB(target.pid);
  proc.kill();
  await proc.exited;
  await Bun.sleep(300);
  return { before, after };
}

const binary = process.env.BENCH_BINARY ?? BINARY;
if (!process.env.BENCH_BINARY) ensureBinary();
const dir = mkdtempSync(join(tmpdir(), "plinth-bench-broker-"));
mkdirSync(join(dir, "plugins"));
// The load connects without credentials.
writeFileSync(join(dir, "platform.config.ts"), "export default { auth: { mqtt: { anonymous: true } } };\n");
const targets: Target[] = [];
async function start(name: string, cmd: string[], pattern: RegExp): Promise<void> {
  const { proc, text } = await spawnReady(cmd, dir, pattern);
  targets.push({ name, url: pattern.exec(text())![1]!, pid: proc.pid, proc });
}

/** A run of the load generator against `target` (see measuredLoad). */
async function measured(target: Target, args: string[]): Promise<{ result: Record<string, number>; brokerCpuPct: number }> {
  const { result, brokerCpuPct } = await measuredLoad(target.pid, args, `load against ${target.name}`);
  return { result: result as Record<string, number>, brokerCpuPct };
}

const VS = {
  window: Number(process.env.BENCH_VS_WINDOW ?? 100),
  rounds: Number(process.env.BENCH_VS_ROUNDS ?? 3),
  durationMs: Number(process.env.BENCH_VS_MS ?? 2_000),
  payload: 64,
};

/** Plinth's broker against mosquitto: both pinned to CPU 0, the load to CPU 1, taking turns. */
async function versusMosquitto(): Promise<void> {
  const missing = mosquittoMissing();
  if (missing) {
    console.log(`\nbroker: Plinth against mosquitto skipped: ${missing}`);
    return;
  }
  const vsDir = join(dir, "vs");
  mkdirSync(join(vsDir, "plugins"), { recursive: true });
  writeFileSync(join(vsDir, "platform.config.ts"), "export default { auth: { mqtt: { anonymous: true } } };\n");
  const pair: Target[] = [];
  try {
    const mosquitto: Mosquitto = await startMosquitto(vsDir, { wrap: (cmd) => pinned(0, cmd) });
    pair.push({ name: mosquittoVersion(), url: mosquitto.url, pid: mosquitto.pid, proc: mosquitto.proc });
    const plinth = await spawnReady(pinned(0, [binary, "run", "--port", "0", "--mqtt-port", "0", "--no-watch", "--log-level", "info"]), vsDir, /platform ready/);
    pair.unshift({ name: "plinth", url: /broker listening url=(mqtt:\S+)/.exec(plinth.text())![1]!, pid: plinth.proc.pid, proc: plinth.proc });
    const [ours, theirs] = pair as [Target, Target];

    const idle = new Map<Target, number>();
    for (const target of pair) {
      const { before, after } = await idleRss(target, (cmd) => pinned(1, cmd));
      idle.set(target, ((after - before) * 1024) / IDLE_CONNECTIONS);
    }
    const lines: string[] = [];
    const ratios: string[] = [];
    for (const [qos, subscribers] of [
      [0, 1],
      [0, 10],
      [1, 1],
      [1, 10],
    ] as const) {
      const runs = new Map<Target, Array<{ rate: number; p99: number; brokerCpuPct: number; usPerMsg: number; genCpuPct: number }>>(pair.map((t) => [t, []]));
      for (let round = 0; round < VS.rounds; round++) {
        for (const target of round % 2 ? [theirs, ours] : [ours, theirs]) {
          const args = ["flow", target.url, qos, subscribers, WARMUP_MS, VS.durationMs, VS.window, VS.payload].map(String);
          const { result, brokerCpuPct } = await measured(target, args);
          const rate = result.rate!;
          runs.get(target)!.push({ rate, p99: result.p99!, brokerCpuPct, usPerMsg: (brokerCpuPct / 100) * (1e6 / rate), genCpuPct: result.genCpuPct! });
        }
      }
      const m = (t: Target, key: "rate" | "p99" | "brokerCpuPct" | "usPerMsg" | "genCpuPct") => median(runs.get(t)!.map((r) => r[key]));
      for (const t of pair) {
        const rs = runs.get(t)!.map((r) => r.rate.toFixed(0)).join(", ");
        lines.push(
          `| QoS ${qos}, 1 → ${subscribers} | ${t.name} | ${m(t, "rate").toFixed(0)} (${rs}) | ${m(t, "p99").toFixed(2)} | ${m(t, "brokerCpuPct").toFixed(0)} | ${m(t, "usPerMsg").toFixed(2)} | ${m(t, "genCpuPct").toFixed(0)} |`,
        );
      }
      const perRound = runs.get(ours)!.map((r, i) => r.rate / runs.get(theirs)!.at(i)!.rate).sort((a, b) => a - b);
      ratios.push(
        `| QoS ${qos}, 1 → ${subscribers} | ${(m(ours, "rate") / m(theirs, "rate")).toFixed(2)} (${perRound[0]!.toFixed(2)}–${perRound.at(-1)!.toFixed(2)}) | ${(m(theirs, "usPerMsg") / m(ours, "usPerMsg")).toFixed(2)} | ≥ 1.0 |`,
      );
    }
    console.log(`\nbroker: Plinth (${binary}) against ${theirs.name} (its defaults, anonymous, max_queued_messages 0); ${PINNING}`);
    console.log(`one publisher → N subscribers on one topic, ${VS.payload}-byte payloads, at most ${VS.window} messages in flight; median (runs) of ${VS.rounds} runs of ${VS.durationMs} ms a row and broker, the brokers taking turns`);
    console.log("| load | broker | delivered msg/s | p99 ms | broker CPU % | broker CPU µs per delivered msg | load generator CPU % |");
    console.log("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for (const line of lines) console.log(line);
    console.log(`\nPlinth / ${theirs.name}`);
    console.log("| load | delivered msg/s: ratio of medians (range of per-round ratios) | CPU per msg: mosquitto's / Plinth's | target |");
    console.log("| --- | ---: | ---: | --- |");
    for (const line of ratios) console.log(line);
    const kib = (t: Target) => idle.get(t)!;
    console.log(`\nRSS per idle connection (${IDLE_CONNECTIONS} idle connections, fresh brokers): plinth ${kib(ours).toFixed(1)} KiB, ${theirs.name} ${kib(theirs).toFixed(1)} KiB (Plinth / mosquitto ${(kib(ours) / kib(theirs)).toFixed(2)}; lower is better)`);
  } finally {
    for (const t of pair) t.proc.kill();
    await Promise.all(pair.map((t) => t.proc.exited));
  }
}

const only = process.env.BENCH_ONLY;
if (!only || only === "mosquitto") await versusMosquitto();
if (only === "mosquitto") {
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}
try {
  // BENCH_ONLY=ingest-ab: this build and BENCH_BEFORE alone, for more turns in the same time.
  const ab = only === "ingest-ab";
  if (!ab) {
    await start("bare aedes, node:net", [process.execPath, join(import.meta.dir, "baselines/aedes.ts")], /listening (mqtt:\S+)/);
    await start("bare aedes, Bun.listen bridge", [process.execPath, join(import.meta.dir, "baselines/aedes-bun.ts")], /listening (mqtt:\S+)/);
  }
  const plinth = [binary, "run", "--port", "0", "--mqtt-port", "0", "--no-watch", "--log-level", "info"];
  await start("plinth", plinth, /broker listening url=(mqtt:\S+)/);
  // The same with the session store in memory: what the SQLite store costs.
  writeFileSync(join(dir, "memory.config.ts"), `export default { auth: { mqtt: { anonymous: true } }, broker: { persistence: "memory" }, data: { dir: "./data-memory" } };\n`);
  if (!ab) await start("plinth, broker.persistence memory", [...plinth, "--config", "memory.config.ts"], /broker listening url=(mqtt:\S+)/);
  const before = process.env.BENCH_BEFORE;
  if (before) {
    writeFileSync(join(dir, "before.config.ts"), `export default { auth: { mqtt: { anonymous: true } }, data: { dir: "./data-before" } };\n`);
    await start("plinth, before (BENCH_BEFORE)", [before, ...plinth.slice(1), "--config", "before.config.ts"], /broker listening url=(mqtt:\S+)/);
  }
  const beforeTarget = before ? targets.at(-1)! : null;
  const [bare] = targets;

  const f = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : "–");
  // Idle first, on fresh brokers: what the load leaves behind (heap not yet collected) would blur it.
  const idle: string[] = [];
  let bareIdle = 0;
  for (const target of only ? [] : targets) {
    const { before, after } = await idleRss(target);
    if (target === bare) bareIdle = after;
    idle.push(
      `| ${target.name} | ${before.toFixed(1)} | ${after.toFixed(1)} | ${(((after - before) * 1024) / IDLE_CONNECTIONS).toFixed(1)} | ${f(after / bareIdle)} |`,
    );
  }
  const rows: string[] = [];
  for (const [qos, subscribers] of only
    ? []
    : ([
        [0, 1],
        [0, 10],
        [1, 1],
        [1, 10],
      ] as const)) {
    const results: Flow[] = [];
    for (const target of targets) results.push(await flow(target, qos, subscribers));
    const base = results[0]!;
    results.forEach((r, i) =>
      rows.push(
        `| QoS ${qos}, 1 → ${subscribers} | ${targets[i]!.name} | ${r.rate.toFixed(0)} | ${f(r.p50)} | ${f(r.p99)} | ${r.lost} | ${r.cpuPct.toFixed(0)} | ${r.rssMiB.toFixed(0)} | ${f(r.rate / base.rate)} |`,
      ),
    );
  }

  // Ingest: what is acknowledged per second once stored. Targets take turns within a row, ROUNDS times.
  const rounds = Number(process.env.BENCH_ROUNDS ?? 2);
  const ingest: string[] = [];
  const toBefore = beforeTarget ? " ratio to before |" : "";
  for (const [qos, sessions] of [
    [1, 0],
    [1, 1],
    [1, 10],
    [2, 1],
  ] as const) {
    const results = targets.map(() => [] as Flow[]);
    for (let round = 0; round < rounds; round++) for (const [i, target] of targets.entries()) results[i]!.push(await flow(target, qos, sessions, "ingest"));
    const median = (runs: Flow[], key: "rate" | "p50" | "p99" | "cpuPct") => {
      const sorted = runs.map((r) => r[key]).sort((a, b) => a - b);
      return sorted.length % 2 ? sorted[(sorted.length - 1) / 2]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
    };
    const baseRate = median(results[0]!, "rate");
    const beforeRate = beforeTarget ? median(results[targets.indexOf(beforeTarget)]!, "rate") : 0;
    results.forEach((runs, i) => {
      const rate = median(runs, "rate");
      const ratioBefore = beforeTarget ? ` ${f(rate / beforeRate)} |` : "";
      ingest.push(
        `| QoS ${qos}, ${sessions} offline | ${targets[i]!.name} | ${rate.toFixed(0)} (${runs.map((r) => r.rate.toFixed(0)).join(", ")}) | ${f(median(runs, "p50"))} | ${f(median(runs, "p99"))} | ${median(runs, "cpuPct").toFixed(0)} | ${f(rate / baseRate)} |${ratioBefore}`,
      );
    });
  }

  console.log(`\nbroker ingest: one publisher, at most ${WINDOW} unacknowledged, ${PAYLOAD}-byte payloads; N persistent sessions offline (each message stored for each); median of ${rounds} runs of ${DURATION_MS} ms, targets taking turns`);
  console.log(`| load | broker | acknowledged msg/s (runs) | p50 ms | p99 ms | broker CPU % | ratio to ${targets[0]!.name} |${toBefore}`);
  console.log(`| --- | --- | ---: | ---: | ---: | ---: | ---: |${beforeTarget ? " ---: |" : ""}`);
  for (const row of ingest) console.log(row);

  if (!only) {
    console.log(`\nbroker: one publisher → N subscribers on one topic, ${PAYLOAD}-byte payloads, at most ${WINDOW} in flight, ${DURATION_MS} ms per row, load in its own process, loopback`);
    console.log("| load | broker | delivered msg/s | p50 ms | p99 ms | lost | broker CPU % | broker RSS MiB | ratio to bare aedes (node:net) |");
    console.log("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (const row of rows) console.log(row);
    console.log(`\nbroker RSS with ${IDLE_CONNECTIONS} idle connections`);
    console.log("| broker | RSS before MiB | RSS with connections MiB | KiB per connection | ratio to bare aedes |");
    console.log("| --- | ---: | ---: | ---: | ---: |");
    for (const row of idle) console.log(row);
  }
} finally {
  for (const t of targets) t.proc.kill();
  await Promise.all(targets.map((t) => t.proc.exited));
  rmSync(dir, { recursive: true, force: true });
}
