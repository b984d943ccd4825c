/**
 * Debian's mosquitto (2.0): the baseline broker of the broker benchmarks (broker.ts, retained.ts) and the
 * cluster tests' outside broker,
 * found on PATH or in /usr/sbin, started on a free loopback port with a config written for the run.
 * When it is not installed the benches print why they skip it (`apt-get install mosquitto` brings it).
 *
 * Settings: mosquitto's defaults, but anonymous clients allowed and no bound on the QoS 1 messages
 * queued per client (max_queued_messages 0; its default of 1,000 would drop retained messages sent
 * to a new subscriber, which Plinth's broker never drops). Nagle stays on (set_tcp_nodelay false),
 * as mosquitto ships.
 */
import { existsSync, writeFileSync } from "node:fs";
import { userInfo } from "node:os";
import { join } from "node:path";
import { connect } from "../bench/mqtt-client";
import { captureOutput } from "./output";

export const MOSQUITTO = Bun.which("mosquitto") ?? (existsSync("/usr/sbin/mosquitto") ? "/usr/sbin/mosquitto" : null);

/** Why mosquitto cannot be measured here, or null when it can. */
export function mosquittoMissing(): string | null {
  return MOSQUITTO ? null : "mosquitto is not installed (Debian: apt-get install mosquitto)";
}

/** "mosquitto version 2.0.11", or what it printed. */
export function mosquittoVersion(): string {
  if (!MOSQUITTO) return "none";
  const out = Bun.spawnSync([MOSQUITTO, "-h"]).stdout.toString();
  return /mosquitto version [\d.]+/.exec(out)?.[0] ?? out.split("\n")[0] ?? "unknown";
}

/** A port nobody listens on right now. */
export function freePort(): number {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  return port;
}

/** Polls `url` with CONNECT until a CONNACK comes back; the time it took in ms. */
export async function waitForBroker(url: string, timeoutMs = 30_000, exited?: () => boolean): Promise<number> {
  const started = performance.now();
  for (;;) {
    try {
      const conn = await connect(url, `bench-ready-${process.pid}`);
      conn.socket.end();
      return performance.now() - started;
    } catch (error) {
      if (exited?.()) throw new Error(`the broker at ${url} exited before it accepted a connection`);
      if (performance.now() - started > timeoutMs) throw error;
      await Bun.sleep(2);
    }
  }
}

export interface Mosquitto {
  url: string;
  port: number;
  pid: number;
  proc: ReturnType<typeof Bun.spawn>;
  /** Spawn → first CONNACK, ms. */
  readyMs: number;
  log(): string;
}

/**
 * Starts mosquitto in `dir` (its config and, with `persistence`, its store there) on `port` (a free
 * one by default), `wrap` applied to its command line (pinned() to a CPU), and waits until it accepts.
 */
export async function startMosquitto(dir: string, options: { port?: number; persistence?: boolean; wrap?: (cmd: string[]) => string[] } = {}): Promise<Mosquitto> {
  if (!MOSQUITTO) throw new Error(mosquittoMissing()!);
  const port = options.port ?? freePort();
  const conf = join(dir, "mosquitto.conf");
  const lines = [`listener ${port} 127.0.0.1`, "allow_anonymous true", "max_queued_messages 0", "log_dest stderr", "log_type error", "log_type warning"];
  // Started as root, mosquitto drops to the user "mosquitto", who could not write the store in `dir`.
  if (options.persistence) lines.push("persistence true", `persistence_location ${dir}/`, "persistence_file mosquitto.db", `user ${process.getuid?.() === 0 ? "root" : userInfo().username}`);
  writeFileSync(conf, `${lines.join("\n")}\n`);
  const started = performance.now();
  const cmd = (options.wrap ?? ((c) => c))([MOSQUITTO, "-c", conf]);
  const proc = Bun.spawn(cmd, { cwd: dir, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const text = captureOutput(proc);
  const url = `mqtt://127.0.0.1:${port}`;
  try {
    await waitForBroker(url, 30_000, () => proc.exitCode !== null);
  } catch (error) {
    proc.kill();
    throw new Error(`${(error as Error).message}\n${text()}`);
  }
  return { url, port, pid: proc.pid, proc, readyMs: performance.now() - started, log: text };
}
