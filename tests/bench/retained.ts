/**
 * Retained messages at scale (part of `npm run bench`): Plinth's broker (the compiled binary, at
 * durability "full", its default, and at "normal") and Debian's mosquitto 2.0 (persistence on, its
 * store in the run's folder; skipped with the reason printed when it is not installed), one after
 * another in the same run, each fresh:
 *
 * 1. publish BENCH_RETAINED (100,000) retained QoS 1 messages of 64 bytes on sensors/<n % 1000>/<n>,
 *    at most 500 unacknowledged: time from the first PUBLISH to the last PUBACK;
 * 2. a new client subscribes to sensors/# at QoS 1: time from SUBSCRIBE until every retained message
 *    has arrived (each acknowledged as it comes);
 * 3. the broker's RSS after that;
 * 4. stopped (SIGTERM: mosquitto writes its store then) and started again on the same port and data:
 *    spawn → first CONNACK, and a new subscriber's catch-up again (all of them must still be there).
 *
 * Brokers pinned to CPU 0 and the load (tests/bench/broker-load.ts) to CPU 1 where taskset is there.
 * BENCH_BINARY (default dist/plinth), BENCH_RETAINED (message count).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY, ensureBinary } from "../helpers/binary";
import { freePort, mosquittoMissing, mosquittoVersion, startMosquitto, waitForBroker } from "../helpers/mosquitto";
import { PINNING, measuredLoad, pinned, rssMiB } from "./proc";

const COUNT = Number(process.env.BENCH_RETAINED ?? 100_000);
const IN_FLIGHT = 500;
const PAYLOAD = 64;
const STALL_MS = 15_000;

interface Broker {
  url: string;
  pid: number;
  proc: ReturnType<typeof Bun.spawn>;
  readyMs: number;
}

interface Kind {
  name: string;
  /** Starts the broker on `port` with its data in `dir` (kept across a restart). */
  start(dir: string, port: number): Promise<Broker>;
}

interface Figures {
  publishMs: number;
  publishCpuPct: number;
  catchUpMs: number;
  received: number;
  catchUpCpuPct: number;
  genCpuPct: number;
  rssMiB: number;
  stopMs: number;
  restartReadyMs: number;
  restartCatchUpMs: number;
  restartReceived: number;
  restartRssMiB: number;
}

const binary = process.env.BENCH_BINARY ?? BINARY;
if (!process.env.BENCH_BINARY) ensureBinary();
const root = mkdtempSync(join(tmpdir(), "plinth-bench-retained-"));

function plinth(durability: "full" | "normal"): Kind {
  return {
    name: `plinth, durability ${durability}${durability === "full" ? " (default)" : ""}`,
    async start(dir, port) {
      mkdirSync(join(dir, "plugins"), { recursive: true });
      writeFileSync(join(dir, "platform.config.ts"), `export default { auth: { mqtt: { anonymous: true } }, data: { durability: "${durability}" } };\n`);
      const started = performance.now();
      const proc = Bun.spawn(pinned(0, [binary, "run", "--port", "0", "--mqtt-port", String(port), "--no-watch", "--log-level", "warn"]), { cwd: dir, stdin: "ignore", stdout: "ignore", stderr: "inherit" });
      const url = `mqtt://127.0.0.1:${port}`;
      await waitForBroker(url, 60_000, () => proc.exitCode !== null);
      return { url, pid: proc.pid, proc, readyMs: performance.now() - started };
    },
  };
}

const mosquitto: Kind = {
  name: `${mosquittoVersion()}, persistence true`,
  start: (dir, port) => startMosquitto(dir, { port, persistence: true, wrap: (cmd) => pinned(0, cmd) }),
};

/** A run of the load generator against `broker` (see measuredLoad). */
const measured = (broker: Broker, args: string[]) => measuredLoad(broker.pid, args, args[0]!);

const catchUp = (broker: Broker) => measured(broker, ["retained-subscribe", broker.url, "sensors/#", String(COUNT), String(STALL_MS)]);

async function stop(broker: Broker): Promise<number> {
  const started = performance.now();
  broker.proc.kill("SIGTERM");
  const timer = setTimeout(() => broker.proc.kill("SIGKILL"), 60_000);
  await broker.proc.exited;
  clearTimeout(timer);
  return performance.now() - started;
}

async function measure(kind: Kind, index: number): Promise<Figures> {
  const dir = join(root, String(index));
  mkdirSync(dir);
  const port = freePort();
  let broker = await kind.start(dir, port);
  try {
    const published = await measured(broker, ["retained-publish", broker.url, String(COUNT), String(IN_FLIGHT), String(PAYLOAD)]);
    await Bun.sleep(200);
    const caught = await catchUp(broker);
    const rss = rssMiB(broker.pid);
    const stopMs = await stop(broker);
    broker = await kind.start(dir, port);
    const again = await catchUp(broker);
    return {
      publishMs: published.result.ms as number,
      publishCpuPct: published.brokerCpuPct,
      catchUpMs: caught.result.ms as number,
      received: caught.result.received as number,
      catchUpCpuPct: caught.brokerCpuPct,
      genCpuPct: Math.max(published.result.genCpuPct as number, caught.result.genCpuPct as number),
      rssMiB: rss,
      stopMs,
      restartReadyMs: broker.readyMs,
      restartCatchUpMs: again.result.ms as number,
      restartReceived: again.result.received as number,
      restartRssMiB: rssMiB(broker.pid),
    };
  } finally {
    if (broker.proc.exitCode === null) {
      broker.proc.kill("SIGKILL");
      await broker.proc.exited;
    }
  }
}

try {
  const missing = mosquittoMissing();
  const kinds = [plinth("full"), plinth("normal"), ...(missing ? [] : [mosquitto])];
  const figures = new Map<Kind, Figures>();
  for (const [i, kind] of kinds.entries()) figures.set(kind, await measure(kind, i));

  const s = (ms: number) => (ms / 1000).toFixed(2);
  const rate = (n: number, ms: number) => ((n / ms) * 1000).toFixed(0);
  console.log(`\nretained at scale: ${COUNT.toLocaleString("en")} retained QoS 1 messages of ${PAYLOAD} bytes on sensors/<n % 1000>/<n>, ${IN_FLIGHT} in flight; then a new subscriber to sensors/# (QoS 1); ${PINNING}`);
  console.log(`Plinth: ${binary}${missing ? `; mosquitto skipped: ${missing}` : ""}`);
  console.log("| broker | publish s (msg/s, broker CPU %) | subscriber catch-up s (msg/s, received, broker CPU %) | RSS after MiB | stop s | restart: spawn → CONNACK ms | catch-up after restart s (received) | RSS after restart MiB | load generator CPU % (max) |");
  console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const kind of kinds) {
    const x = figures.get(kind)!;
    console.log(
      `| ${kind.name} | ${s(x.publishMs)} (${rate(COUNT, x.publishMs)}, ${x.publishCpuPct.toFixed(0)}) | ${s(x.catchUpMs)} (${rate(x.received, x.catchUpMs)}, ${x.received}, ${x.catchUpCpuPct.toFixed(0)}) | ${x.rssMiB.toFixed(1)} | ${s(x.stopMs)} | ${x.restartReadyMs.toFixed(0)} | ${s(x.restartCatchUpMs)} (${x.restartReceived}) | ${x.restartRssMiB.toFixed(1)} | ${x.genCpuPct.toFixed(0)} |`,
    );
  }
  if (!missing) {
    const m = figures.get(mosquitto)!;
    console.log(`\nPlinth / mosquitto (rates; ready time: mosquitto's / Plinth's, so above 1 is Plinth ahead)`);
    console.log("| Plinth | publish | subscriber catch-up | restart ready | catch-up after restart | target |");
    console.log("| --- | ---: | ---: | ---: | ---: | --- |");
    for (const kind of kinds.slice(0, 2)) {
      const x = figures.get(kind)!;
      const complete = x.received === COUNT && x.restartReceived === COUNT ? "" : " (incomplete: see received)";
      console.log(
        `| ${kind.name} | ${(m.publishMs / x.publishMs).toFixed(2)} | ${((x.received / x.catchUpMs) / (m.received / m.catchUpMs)).toFixed(2)}${complete} | ${(m.restartReadyMs / x.restartReadyMs).toFixed(2)} | ${((x.restartReceived / x.restartCatchUpMs) / (m.restartReceived / m.restartCatchUpMs)).toFixed(2)} | ≥ 1.0 publish and catch-up |`,
      );
    }
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}
