/**
 * MQTT over WebSocket: on the gateway's port (the default: the gateway's thread takes each frame and
 * hands it to the broker's thread) against a port of its own (`broker.websocketPort`: the broker's
 * thread serves the WebSocket itself), part of `npm run bench`. Two compiled binaries side by side on
 * CPU 0, the load generator (tests/bench/broker-load.ts over ws://) on CPU 1: 64-byte QoS 0 and QoS 1,
 * one publisher → one subscriber, a 100-message window, BENCH_WS_ROUNDS (3) rounds of 2 s runs taking
 * turns. Reported: delivered msg/s and the platform's CPU (every thread) per delivered message, median
 * (range), and their ratios within a round. BENCH_BINARY (default dist/plinth).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY, ensureBinary } from "../helpers/binary";
import { freePort, waitForBroker } from "../helpers/mosquitto";
import { PINNING, measuredLoad, median, pinned } from "./proc";

const ROUNDS = Number(process.env.BENCH_WS_ROUNDS ?? 3);
const binary = process.env.BENCH_BINARY ?? BINARY;
if (!process.env.BENCH_BINARY) ensureBinary();
const root = mkdtempSync(join(tmpdir(), "plinth-bench-ws-"));

interface Target {
  name: string;
  url: string;
  pid: number;
  proc: ReturnType<typeof Bun.spawn>;
}

async function start(name: string, ownPort: boolean): Promise<Target> {
  const dir = join(root, ownPort ? "own" : "shared");
  mkdirSync(join(dir, "plugins"), { recursive: true });
  const gateway = freePort();
  const ws = freePort();
  writeFileSync(join(dir, "platform.config.ts"), `export default { auth: { mqtt: { anonymous: true } }, broker: { sysIntervalMs: 0${ownPort ? `, websocketPort: ${ws}` : ""} } };\n`);
  const proc = Bun.spawn(pinned(0, [binary, "run", "--port", String(gateway), "--mqtt-port", String(freePort()), "--no-watch", "--log-level", "warn"]), { cwd: dir, stdin: "ignore", stdout: "ignore", stderr: "inherit" });
  const url = `ws://127.0.0.1:${ownPort ? ws : gateway}/mqtt`;
  await waitForBroker(url, 60_000, () => proc.exitCode !== null);
  return { name, url, pid: proc.pid, proc };
}

const targets: Target[] = [];
try {
  targets.push(await start("gateway's port (frames relayed to the broker's thread)", false), await start("a port of its own (broker.websocketPort)", true));
  const rows: Array<{ qos: number; rate: number[][]; cpu: number[][] }> = [];
  for (const qos of [0, 1]) {
    const rate: number[][] = targets.map(() => []);
    const cpu: number[][] = targets.map(() => []);
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 ? [1, 0] : [0, 1];
      for (const i of order) {
        const t = targets[i]!;
        const { result, brokerCpuPct } = await measuredLoad(t.pid, ["flow", t.url, String(qos), "1", "500", "2000", "100", "64"], `flow over ${t.url}`);
        const r = result.rate as number;
        rate[i]!.push(r);
        cpu[i]!.push((brokerCpuPct / 100) * 1e6 / r);
      }
    }
    rows.push({ qos, rate, cpu });
  }
  const range = (xs: number[], digits: number) => `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;
  console.log(`\nMQTT over WebSocket: 64-byte messages, 1 → 1, a 100-message window; ${ROUNDS} rounds of 2 s runs taking turns; ${PINNING}`);
  console.log(`Plinth: ${binary}`);
  console.log("| QoS | where | delivered msg/s | platform CPU µs per message |");
  console.log("| --- | --- | ---: | ---: |");
  for (const row of rows) for (const [i, t] of targets.entries()) console.log(`| ${row.qos} | ${t.name} | ${range(row.rate[i]!, 0)} | ${range(row.cpu[i]!, 2)} |`);
  console.log("\nown port / gateway's port, within a round: median (range)");
  console.log("| QoS | delivered msg/s | CPU per message |");
  console.log("| --- | ---: | ---: |");
  for (const row of rows) {
    const ratio = (xs: number[][]) => xs[1]!.map((x, k) => x / xs[0]![k]!);
    console.log(`| ${row.qos} | ${range(ratio(row.rate), 2)} | ${range(ratio(row.cpu), 2)} |`);
  }
} finally {
  for (const t of targets) t.proc.kill();
  await Promise.all(targets.map((t) => t.proc.exited));
  rmSync(root, { recursive: true, force: true });
}
