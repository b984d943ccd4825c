/** What the benchmarks read about a process from /proc, and the median they report. */
import { readFileSync } from "node:fs";

/** CPU time of process `pid` so far: utime + stime, in clock ticks (100/s). */
export function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

export function rssMiB(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
  return kb / 1024;
}

/** The middle value; with an even count, the mean of the two middle ones. */
export function median(xs: number[]): number {
  const sorted = xs.toSorted((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** taskset, when it is there and there are two CPUs or more to pin to. */
const TASKSET = navigator.hardwareConcurrency >= 2 ? Bun.which("taskset") : null;

/** `cmd` run on CPU `cpu` only (taskset -c), or as it is without taskset. */
export function pinned(cpu: number, cmd: string[]): string[] {
  return TASKSET ? [TASKSET, "-c", String(cpu), ...cmd] : cmd;
}

/** What pinned() does on this machine, for the benches' output. */
export const PINNING = TASKSET
  ? "pinned with taskset: the server under test on CPU 0, the load generator on CPU 1"
  : "not pinned (taskset missing or a single CPU): server and load generator share the CPUs";

/**
 * Runs the MQTT load generator (tests/bench/broker-load.ts) on CPU 1 with `args`: its JSON result line, and
 * the CPU of process `pid` (% of one core) between the generator's "measuring" line and its result.
 */
export async function measuredLoad(pid: number, args: string[], what: string): Promise<{ result: Record<string, number | boolean>; brokerCpuPct: number }> {
  const proc = Bun.spawn(pinned(1, [process.execPath, new URL("./broker-load.ts", import.meta.url).pathname, ...args]), { stdout: "pipe", stderr: "inherit" });
  const decoder = new TextDecoder();
  let text = "";
  let ticks = 0;
  let started = 0;
  let brokerCpuPct = Number.NaN;
  for await (const chunk of proc.stdout) {
    text += decoder.decode(chunk, { stream: true });
    if (!started && /^measuring$/m.test(text)) {
      ticks = cpuTicks(pid);
      started = performance.now();
    }
    if (started && /^\{.*\}$/m.test(text)) {
      brokerCpuPct = ((cpuTicks(pid) - ticks) / 100 / ((performance.now() - started) / 1000)) * 100;
      break;
    }
  }
  if ((await proc.exited) !== 0 || !/^\{.*\}$/m.test(text)) throw new Error(`${what} failed: ${text}`);
  return { result: JSON.parse(/^\{.*\}$/m.exec(text)![0]) as Record<string, number | boolean>, brokerCpuPct };
}
