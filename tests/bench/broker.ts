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
 * BENCH_MS (measured time per row, default 2500), BENCH_BINARY (default dist/plinth),
 * BENCH_BEFORE (another build of the binary: measured too, and each row's ratio to it printed),
 * BENCH_ONLY=ingest (the ingest rows only; ingest-ab: and only this build and BENCH_BEFORE), BENCH_ROUNDS (ingest runs per target and row, taking
 * turns; default 2: the median is printed, and each run).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY, ensureBinary } from "../helpers/binary";
import { cpuTicks, rssMiB } from "./proc";
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

async function idleRss(target: Target): Promise<{ before: number; after: number }> {
  const before = rssMiB(target.pid);
  const proc = Bun.spawn([process.execPath, LOAD, "idle", target.url, String(IDLE_CONNECTIONS)], { stdout: "pipe", stderr: "inherit" });
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

const only = process.env.BENCH_ONLY;
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
