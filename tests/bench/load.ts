/**
 * The benchmarks' load generator: wrk when it is installed (one thread, like
 * the brief's figures), otherwise a closed-loop Bun fetch client. Also reads
 * the server's CPU time and RSS from /proc around each run.
 */
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cpuTicks, pinned, rssMiB } from "./proc";

export interface LoadOptions {
  method?: "GET" | "POST";
  body?: string;
  headers?: Record<string, string>;
  connections?: number;
  durationMs?: number;
  /** Runs wrk on this CPU only (taskset, where there is one: proc.ts pinned()). */
  cpu?: number;
}

export interface LoadResult {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  /** Server CPU over the run, in % of one core. */
  cpuPct: number;
  rssMiB: number;
}

const WRK = Bun.which("wrk");
export const GENERATOR = WRK ? `wrk (${Bun.spawnSync([WRK, "--version"]).stdout.toString().split(" ").slice(0, 2).join(" ")}), 1 thread` : "Bun fetch closed loop";

export async function load(url: string, pid: number, options: LoadOptions = {}): Promise<LoadResult> {
  const { connections = 50, durationMs = 3_000 } = options;
  const before = cpuTicks(pid);
  const started = performance.now();
  const result = WRK ? await wrk(url, connections, durationMs, options) : await fetchLoop(url, connections, durationMs, options);
  const seconds = (performance.now() - started) / 1000;
  return { ...result, cpuPct: ((cpuTicks(pid) - before) / 100 / seconds) * 100, rssMiB: rssMiB(pid) };
}

async function wrk(url: string, connections: number, durationMs: number, options: LoadOptions) {
  const args = [WRK!, "-t1", `-c${connections}`, `-d${Math.round(durationMs / 1000)}s`, "--latency"];
  if (options.method === "POST") {
    const script = join(tmpdir(), `plinth-wrk-${process.pid}.lua`);
    // A body-less POST carries no Content-Type (an empty JSON body is a 400).
    const contentType = options.body === undefined ? "" : `wrk.headers["Content-Type"] = "application/json"\n`;
    writeFileSync(script, `wrk.method = "POST"\nwrk.body = ${JSON.stringify(options.body ?? "")}\n${contentType}`);
    args.push("-s", script);
  }
  for (const [name, value] of Object.entries(options.headers ?? {})) args.push("-H", `${name}: ${value}`);
  const cmd = [...args, url];
  const out = Bun.spawnSync(options.cpu === undefined ? cmd : pinned(options.cpu, cmd)).stdout.toString();
  const latency = (p: string) => toMs(new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)`, "m").exec(out));
  const errors = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0) + Number(/Socket errors:.*?timeout (\d+)/.exec(out)?.[1] ?? 0);
  return { rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0), p50Ms: latency("50"), p99Ms: latency("99"), errors };
}

function toMs(m: RegExpExecArray | null): number {
  if (!m) return Number.NaN;
  const value = Number(m[1]);
  return m[2] === "us" ? value / 1000 : m[2] === "s" ? value * 1000 : value;
}

async function fetchLoop(url: string, connections: number, durationMs: number, options: LoadOptions) {
  const headers = { ...options.headers, ...(options.method === "POST" && options.body !== undefined ? { "content-type": "application/json" } : {}) };
  const init: RequestInit = options.method === "POST" ? { method: "POST", headers, body: options.body ?? "" } : { headers };
  const latencies: number[] = [];
  let errors = 0;
  const end = performance.now() + durationMs;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        const res = await fetch(url, init);
        await res.arrayBuffer();
        if (!res.ok) errors++;
        latencies.push(performance.now() - t0);
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))]!;
  return { rps: latencies.length / ((performance.now() - started) / 1000), p50Ms: q(0.5), p99Ms: q(0.99), errors };
}

