/**
 * HTTP across nodes (part of `npm run bench`): Plinth's cluster on Debian's mosquitto, two nodes of the
 * compiled binary (node a hosts the bench plugin, node b hosts nothing), against Moleculer 0.14 across
 * two nodes through the same mosquitto (tests/bench/baselines/moleculer-node.mjs: its MQTT transporter,
 * moleculer-web on one node, the action on the other). Measured: GET /api/bench/echo on node a (local)
 * and through node b (across), and Moleculer's GET /api/echo across; `wrk -t1 -c50` req/s over
 * BENCH_CLUSTER_ROUNDS (3) rounds of 2 s runs taking turns, then one connection for p50/p99. Unpinned:
 * the nodes, mosquitto and wrk share the machine's two cores. Skipped with the reason when mosquitto,
 * Node.js or moleculer is missing. BENCH_BINARY (default dist/plinth).
 */
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY, OPEN_AUTH, ensureBinary } from "../helpers/binary";
import { mosquittoMissing, mosquittoVersion, startMosquitto } from "../helpers/mosquitto";
import { GENERATOR, load, type LoadResult } from "./load";
import { median } from "./proc";
import { spawnReady } from "./spawn";

const ROUNDS = Number(process.env.BENCH_CLUSTER_ROUNDS ?? 3);
const binary = process.env.BENCH_BINARY ?? BINARY;
if (!process.env.BENCH_BINARY) ensureBinary();

interface Target {
  name: string;
  url: string;
  pid: number;
}

const missing = mosquittoMissing();
if (missing) {
  console.log(`\nHTTP across nodes: skipped (${missing})`);
  process.exit(0);
}
const root = mkdtempSync(join(tmpdir(), "plinth-bench-cluster-"));
const procs: Array<{ kill(): void; exited: Promise<number> }> = [];
try {
  const mosquitto = await startMosquitto(root);
  procs.push(mosquitto.proc);
  const node = async (name: string, plugins: boolean) => {
    const dir = join(root, name);
    mkdirSync(join(dir, "plugins"), { recursive: true });
    if (plugins) cpSync(join(import.meta.dir, "plugins"), join(dir, "plugins"), { recursive: true });
    writeFileSync(join(dir, "platform.config.ts"), `export default { ${OPEN_AUTH}, data: { durability: "normal" } };\n`);
    const started = await spawnReady([binary, "run", "--port", "0", "--no-watch", "--log-level", "info", "--cluster", mosquitto.url, "--node", name], dir, /platform ready/);
    procs.push(started.proc);
    return { url: /gateway listening url=(http:\S+)/.exec(started.text())![1]!, pid: started.proc.pid };
  };
  const a = await node("a", true);
  const b = await node("b", false);
  // Node b routes to a once a's announcement reached it.
  for (let i = 0; i < 100 && (await fetch(`${b.url}/api/bench/echo`)).status !== 200; i++) await Bun.sleep(50);
  const targets: Target[] = [
    { name: "Plinth, node a's own service (local)", url: `${a.url}/api/bench/echo`, pid: a.pid },
    { name: "Plinth, through node b to node a (across)", url: `${b.url}/api/bench/echo`, pid: b.pid },
  ];
  let moleculer = "";
  const node20 = Bun.which("node");
  if (!node20) moleculer = "Node.js (node) is not on PATH";
  else {
    try {
      const script = join(import.meta.dir, "baselines/moleculer-node.mjs");
      const service = await spawnReady([node20, script, mosquitto.url, "service"], root, /ready/);
      procs.push(service.proc);
      const gateway = await spawnReady([node20, script, mosquitto.url, "gateway"], root, /listening (http:\S+)/);
      procs.push(gateway.proc);
      targets.push({ name: "Moleculer 0.14, MQTT transporter (across)", url: `${/listening (http:\S+)/.exec(gateway.text())![1]!}/api/echo`, pid: gateway.proc.pid });
    } catch (error) {
      moleculer = (error as Error).message.split("\n").slice(0, 2).join(" ");
    }
  }
  for (const t of targets) for (let i = 0; i < 200; i++) await (await fetch(t.url)).arrayBuffer();

  const many = new Map<Target, LoadResult[]>(targets.map((t) => [t, []]));
  const one = new Map<Target, LoadResult[]>(targets.map((t) => [t, []]));
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 ? [...targets].reverse() : targets;
    for (const t of order) many.get(t)!.push(await load(t.url, t.pid, { connections: 50, durationMs: 2_000 }));
    for (const t of order) one.get(t)!.push(await load(t.url, t.pid, { connections: 1, durationMs: 2_000 }));
  }
  const f = (n: number, d = 0) => n.toFixed(d);
  const range = (xs: number[], d = 0) => `${f(median(xs), d)} (${f(Math.min(...xs), d)}–${f(Math.max(...xs), d)})`;
  console.log(`\nHTTP across nodes: ${GENERATOR}, ${ROUNDS} rounds of 2 s runs taking turns, unpinned; ${mosquittoVersion()} as the cluster's broker`);
  console.log(`Plinth: ${binary}${moleculer ? `; Moleculer skipped: ${moleculer}` : ""}`);
  console.log("| path | req/s, 50 connections, median (range) | p50 / p99 ms, 1 connection |");
  console.log("| --- | ---: | ---: |");
  for (const t of targets) {
    const o = one.get(t)!;
    console.log(`| ${t.name} | ${range(many.get(t)!.map((r) => r.rps))} | ${f(median(o.map((r) => r.p50Ms)), 3)} / ${f(median(o.map((r) => r.p99Ms)), 3)} |`);
  }
  const across = targets[1]!;
  const ratio = (x: Target, y: Target) => many.get(x)!.map((r, i) => r.rps / many.get(y)![i]!.rps);
  console.log("\nratios within a round, median (range)");
  console.log(`| across / local | ${range(ratio(across, targets[0]!), 2)} | |`);
  if (targets[2]) console.log(`| Plinth across / Moleculer across | ${range(ratio(across, targets[2]), 2)} | ≥ 1.5 |`);
  const added = median(one.get(across)!.map((r) => r.p50Ms)) - median(one.get(targets[0]!)!.map((r) => r.p50Ms));
  console.log(`| added p50 of one hop across, ms | ${f(added, 3)} | ≤ 0.15 |`);
} finally {
  for (const p of procs) p.kill();
  await Promise.all(procs.map((p) => p.exited));
  rmSync(root, { recursive: true, force: true });
}
