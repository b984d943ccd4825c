/**
 * Durable events across nodes under kill -9, with the compiled binary on a real Mosquitto: an emitting
 * service on node a under steady load, a subscribing plugin on node b. Killed in turn: the subscriber's
 * node, the source's node, and the broker itself (restarted on its port); each started again. Then every
 * acknowledged request's event is counted in the subscriber's table: none missing, none twice.
 */
import { expect, test } from "bun:test";
import { startBinary, type Running } from "../helpers/binary";
import { eventually } from "../helpers/mqtt";
import { mosquittoMissing, startMosquitto, type Mosquitto } from "../helpers/mosquitto";
import { writePlugins } from "../helpers/plugins";
import { tempDir } from "../helpers/tmp";

const missing = mosquittoMissing();


test.skipIf(missing !== null)(`kill -9 of the subscriber's node, the source's node and the broker under load: every acknowledged event handled once${missing ? ` (skipped: ${missing})` : ""}`, async () => {
  using dir = tempDir("plinth-e2e-cluster-crash");
  let mosquitto: Mosquitto = await startMosquitto(dir.path);
  const port = mosquitto.port;
  writePlugins(dir.join("a/plugins"), { fixtures: ["emitter"] });
  writePlugins(dir.join("b/plugins"), { fixtures: ["sink"] });
  const node = (name: "a" | "b") => startBinary(dir.join(name), ["--cluster", mosquitto.url, "--node", name]);
  let a: Running = await node("a");
  let b: Running = await node("b");

  const acknowledged: number[] = [];
  let n = 0;
  let running = true;
  const loaders = Array.from({ length: 4 }, async () => {
    while (running) {
      const mine = n++;
      try {
        const res = await fetch(`${a.url}/api/emitter`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ type: "made", data: { n: mine } }) });
        await res.arrayBuffer();
        if (res.status === 200) acknowledged.push(mine);
      } catch {
        await Bun.sleep(20); // the source's node is down: try again
      }
    }
  });
  const more = async (count: number) => {
    const target = acknowledged.length + count;
    await eventually(() => acknowledged.length >= target, 30_000, 10);
  };

  try {
    await more(200);
    b.proc.kill("SIGKILL");
    await more(200);
    b = await node("b");
    await more(200);
    a.proc.kill("SIGKILL");
    await Bun.sleep(200);
    a = await node("a");
    await more(200);
    mosquitto.proc.kill("SIGKILL");
    await mosquitto.proc.exited;
    await Bun.sleep(200);
    mosquitto = await startMosquitto(dir.path, { port });
    await more(200);
  } finally {
    running = false;
    await Promise.all(loaders);
  }

  const handled = await eventually(async () => {
    const seen = (await (await fetch(`${b.url}/api/sink`)).json()) as number[];
    return acknowledged.every((x) => seen.includes(x)) ? seen : null;
  }, 30_000);
  const counts = new Map<number, number>();
  for (const x of handled) counts.set(x, (counts.get(x) ?? 0) + 1);
  expect(acknowledged.filter((x) => !counts.has(x))).toEqual([]);
  expect([...counts].filter(([, c]) => c > 1)).toEqual([]);
  expect(acknowledged.length).toBeGreaterThanOrEqual(1_000);
  await a.stop();
  await b.stop();
  mosquitto.proc.kill();
}, 120_000);
