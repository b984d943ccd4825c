/**
 * Main-thread cost per request (part of `npm run bench`): the gateway's own
 * JavaScript path, in one process, without HTTP parsing or sockets. Requests
 * go to the gateway's fetch handler and on to the bench plugin's worker; the
 * main thread's CPU time (from /proc) is divided by the requests served.
 * The main thread is what bounds every HTTP path, so this is the figure to
 * watch when changing the hot path: it moves far less with the machine's
 * noise than requests/s.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../helpers/tmp";
import { startInProcess } from "./inprocess";
import { median } from "./proc";

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 40_000);
const CONCURRENCY = 50;

/** This thread's CPU time in ms (utime + stime of the main thread, 10 ms ticks). */
function threadCpuMs(): number {
  const fields = readFileSync(`/proc/self/task/${process.pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

using dir = tempDir("plinth-bench-main");
const platform = await startInProcess(join(import.meta.dir, "plugins"), dir.join("data"), { auth: { defaultPolicy: "public" } });
const base = "http://127.0.0.1/api/bench";
const json = { "content-type": "application/json", "content-length": "9" };
const paths: Record<string, () => Request> = {
  "GET /echo": () => new Request(`${base}/echo`),
  "POST /noop (a JSON body, no event)": () => new Request(`${base}/noop`, { method: "POST", body: '{"v":"x"}', headers: json }),
  "POST /tick (one durable event)": () => new Request(`${base}/tick`, { method: "POST", body: '{"v":"x"}', headers: json }),
  "POST /items (INSERT + event)": () => new Request(`${base}/items`, { method: "POST", body: '{"v":"x"}', headers: json }),
  "GET /items/1": () => new Request(`${base}/items/1`),
};

async function run(make: () => Request, requests: number): Promise<{ us: number; rps: number }> {
  let sent = 0;
  const cpu = threadCpuMs();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (sent++ < requests) {
        const res = await platform.gateway.app.fetch(make());
        if (res.status >= 300) throw new Error(`${res.status} ${await res.text()}`);
        await res.arrayBuffer();
      }
    }),
  );
  const ms = performance.now() - started;
  return { us: ((threadCpuMs() - cpu) * 1000) / requests, rps: requests / (ms / 1000) };
}

for (const make of Object.values(paths)) await run(make, REQUESTS / 4); // warm-up
const rows: string[] = [];
for (const [name, make] of Object.entries(paths)) {
  const runs = [await run(make, REQUESTS), await run(make, REQUESTS), await run(make, REQUESTS)];
  rows.push(`| ${name} | ${median(runs.map((r) => r.us)).toFixed(1)} | ${Math.round(median(runs.map((r) => r.rps)))} |`);
}
await platform.stop();

console.log(`\nmain thread per request, in process (no HTTP parsing or sockets), ${CONCURRENCY} in flight, median of 3 × ${REQUESTS}`);
console.log("| path | main-thread CPU µs per request (includes building the Request) | requests/s |");
console.log("| --- | ---: | ---: |");
for (const row of rows) console.log(row);
