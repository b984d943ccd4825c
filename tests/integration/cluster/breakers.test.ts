/**
 * A breaker per instance across nodes, on a real Mosquitto: a service two nodes host, one of which
 * fails every call. The failing instance's breaker (`where@bad`) opens and it is passed over; the
 * other instance serves every call from then on, its own breaker closed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { boot, type Booted } from "../../helpers/boot";
import { eventually } from "../../helpers/mqtt";
import { mosquittoMissing, startMosquitto, type Mosquitto } from "../../helpers/mosquitto";
import { tempDir } from "../../helpers/tmp";

const missing = mosquittoMissing();

const where = `import { definePlugin } from "plinth";
export default definePlugin({
  name: "where", version: "1.0.0",
  configure: (config) => config as { node: string; fail?: boolean },
  actions: {
    which: (ctx) => {
      if (ctx.config.fail) throw new Error("this instance fails");
      return ctx.config.node;
    },
  },
});`;

describe.skipIf(missing !== null)(`breakers per instance across nodes${missing ? ` (skipped: ${missing})` : ""}`, () => {
  const dir = tempDir("plinth-cluster-breakers");
  let mosquitto: Mosquitto;
  const nodes: Booted[] = [];
  let caller: Booted;

  beforeAll(async () => {
    mosquitto = await startMosquitto(dir.path);
    const cluster = (node: string) => ({ url: mosquitto.url, node, announceMs: 200 });
    nodes.push(await boot({ files: { "where.ts": where } }, { cluster: cluster("good"), plugins: { config: { where: { node: "good" } } } }));
    nodes.push(await boot({ files: { "where.ts": where } }, { cluster: cluster("bad"), plugins: { config: { where: { node: "bad", fail: true } } } }));
    caller = await boot({ fixtures: ["caller"] }, { cluster: cluster("caller"), breaker: { failureThreshold: 2, resetTimeoutMs: 60_000 } });
    nodes.push(caller);
    await eventually(async () => ((await (await caller.req("/api/platform/nodes")).json()) as Array<{ state: string }>).filter((n) => n.state === "up").length === 3);
  });
  afterAll(async () => {
    for (const p of nodes) await p.stop();
    mosquitto?.proc.kill();
    dir[Symbol.dispose]();
  });

  test("the failing instance is cut off by its own breaker; the other serves every call after it", async () => {
    const outcomes: string[] = [];
    for (let i = 0; i < 30; i++) {
      const r = (await (await caller.req("/api/caller", { json: { target: "where.which" } })).json()) as { ok: boolean; value?: string; code?: string };
      outcomes.push(r.ok ? r.value! : r.code!);
    }
    // Two failures open its breaker (failureThreshold 2); from then on only the good instance answers.
    expect(outcomes.filter((o) => o !== "good")).toEqual(["PLT_HANDLER_ERROR", "PLT_HANDLER_ERROR"]);
    expect(outcomes.slice(-20)).toEqual(Array(20).fill("good"));
    const breakers = (await (await caller.req("/api/platform/breakers")).json()) as Record<string, { state: string }>;
    expect(breakers["where@bad"]?.state).toBe("open");
    expect(breakers["where@good"]?.state).toBe("closed");
  });
});
