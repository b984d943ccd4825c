/**
 * Events benchmark (part of `npm run bench`): events per second and latency
 * from commit to an external MQTT subscriber, at 1, 100 and 1,000 events in
 * flight, against a bare aedes publish loop in the same run.
 * - Plinth: closed-loop HTTP POSTs to the bench plugin; each commits one event
 *   (outbox row, then QoS 1 publish after commit); an MQTT.js subscriber (QoS 1)
 *   receives them over TCP.
 * - Baseline: an MQTT.js publisher keeps the same number of QoS 1 publishes
 *   unacknowledged against bare aedes; the same kind of subscriber receives them.
 * Latency: wall clock stamped by the sender (performance.timeOrigin + now) to receipt.
 */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { BINARY, OPEN_AUTH, ensureBinary } from "../helpers/binary";
import { cpuTicks } from "./proc";
import { spawnReady } from "./spawn";

const DURATION_MS = Number(process.env.BENCH_MS ?? 3_000);
const IN_FLIGHT = [1, 100, 1_000];
const now = () => performance.timeOrigin + performance.now();

interface Result {
  rate: number;
  p50: number;
  p99: number;
}

async function subscriber(url: string, filter: string): Promise<{ client: MqttClient; latencies: number[] }> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
  const latencies: number[] = [];
  client.on("message", (_topic, payload) => {
    const body = JSON.parse(payload.toString()) as { sentAt?: number; data?: { sentAt: number } };
    latencies.push(now() - (body.data?.sentAt ?? body.sentAt ?? Number.NaN));
  });
  await client.subscribeAsync(filter, { qos: 1 });
  return { client, latencies };
}

function summarize(latencies: number[], elapsedMs: number): Result {
  const sorted = latencies.filter((l) => Number.isFinite(l)).sort((a, b) => a - b);
  const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? Number.NaN;
  return { rate: (sorted.length / elapsedMs) * 1000, p50: q(0.5), p99: q(0.99) };
}

/** Runs `send` with `inFlight` concurrent loops for the duration; returns what the subscriber saw. */
async function drive(latencies: number[], inFlight: number, send: () => Promise<unknown>): Promise<Result> {
  latencies.length = 0;
  const started = performance.now();
  const end = started + DURATION_MS;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < end) await send();
    }),
  );
  await Bun.sleep(200); // let the last events arrive
  return summarize(latencies, performance.now() - started - 200);
}

const binary = process.env.BENCH_BINARY ?? BINARY;
if (!process.env.BENCH_BINARY) ensureBinary();
const dir = mkdtempSync(join(tmpdir(), "plinth-bench-events-"));
cpSync(join(import.meta.dir, "plugins"), join(dir, "plugins"), { recursive: true });
// Open routes and anonymous MQTT (the binary's defaults are closed): the bench measures events, not auth.
// Durability "normal": the pipeline against bare aedes, which stores nothing (durability.ts measures "full").
writeFileSync(join(dir, "platform.config.ts"), `export default { ${OPEN_AUTH}, data: { durability: "normal" } };\n`);
const aedes = await spawnReady([process.execPath, join(import.meta.dir, "baselines/aedes.ts")], dir, /listening (mqtt:\S+)/);
const plinth = await spawnReady([binary, "run", "--port", "0", "--mqtt-port", "0", "--log-level", "info"], dir, /platform ready/);
const aedesUrl = aedes.text().match(/listening (mqtt:\S+)/)![1]!;
const plinthHttp = plinth.text().match(/gateway listening url=(http:\S+)/)![1]!;
const plinthMqtt = plinth.text().match(/broker listening url=(mqtt:\S+)/)![1]!;

try {
  const baseSub = await subscriber(aedesUrl, "bench/#");
  const publisher = await mqtt.connectAsync(aedesUrl, { reconnectPeriod: 0 });
  const plinthSub = await subscriber(plinthMqtt, "events/bench/#");
  const rows: string[] = [];
  for (const inFlight of IN_FLIGHT) {
    const base = await drive(baseSub.latencies, inFlight, () =>
      publisher.publishAsync("bench/tick", JSON.stringify({ sentAt: now() }), { qos: 1 }),
    );
    const ours = await drive(plinthSub.latencies, inFlight, async () => (await fetch(`${plinthHttp}/api/bench/tick`, { method: "POST" })).arrayBuffer());
    // the same number of events in flight, 100 per commit
    const burst = await drive(plinthSub.latencies, Math.max(1, inFlight / 100), async () =>
      (await fetch(`${plinthHttp}/api/bench/burst`, { method: "POST" })).arrayBuffer(),
    );
    const f = (n: number) => n.toFixed(2);
    const cells = (r: Result) => `${r.rate.toFixed(0)} | ${f(r.p50)} | ${f(r.p99)} | ${(r.rate / base.rate).toFixed(2)}`;
    rows.push(`| ${inFlight} | ${base.rate.toFixed(0)} | ${f(base.p50)} | ${f(base.p99)} | ${cells(ours)} | ${cells(burst)} |`);
  }
  console.log(`\nevents: commit → external MQTT subscriber (QoS 1), ${DURATION_MS} ms per row, loopback, one machine`);
  console.log("| in flight | bare aedes ev/s | p50 ms | p99 ms | plinth, 1 event/request ev/s | p50 ms | p99 ms | ratio | plinth, 100 events/commit ev/s | p50 ms | p99 ms | ratio |");
  console.log("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const row of rows) console.log(row);
  // Fan-out: one commit → 10 external subscribers (100 requests in flight, one event each).
  const fans = await Promise.all(Array.from({ length: 10 }, () => subscriber(plinthMqtt, "events/bench/tick")));
  const shared: number[] = [];
  for (const f of fans) f.latencies.length = 0;
  const fanStart = performance.now();
  const fanCpu = process.cpuUsage();
  const plinthTicks = cpuTicks(plinth.proc.pid);
  await drive(shared, 100, async () => (await fetch(`${plinthHttp}/api/bench/tick`, { method: "POST" })).arrayBuffer());
  const fanMs = performance.now() - fanStart - 200;
  const { user, system } = process.cpuUsage(fanCpu);
  const plinthCpuPct = ((cpuTicks(plinth.proc.pid) - plinthTicks) / 100 / ((fanMs + 200) / 1000)) * 100;
  const all = fans.flatMap((f) => f.latencies);
  const fan = summarize(all, fanMs);
  const counts = fans.map((f) => f.latencies.length);
  console.log(
    `\nfan-out, one commit → 10 external subscribers (100 requests in flight): ${fan.rate.toFixed(0)} deliveries/s (${(fan.rate / 10).toFixed(0)} commits/s; fewest to one subscriber ${Math.min(...counts)}, most ${Math.max(...counts)}), p50 ${fan.p50.toFixed(2)} ms, p99 ${fan.p99.toFixed(2)} ms; plinth CPU ${plinthCpuPct.toFixed(0)} %, this process (HTTP client and the 10 MQTT.js subscribers) ${(((user + system) / 1000 / (fanMs + 200)) * 100).toFixed(0)} % of a core`,
  );
  await Promise.all([baseSub.client.endAsync(), publisher.endAsync(), plinthSub.client.endAsync(), ...fans.map((f) => f.client.endAsync())]);
} finally {
  aedes.proc.kill();
  plinth.proc.kill();
  await Promise.all([aedes.proc.exited, plinth.proc.exited]);
  rmSync(dir, { recursive: true, force: true });
}
