/**
 * Hot reload on a real plugins folder: plugins added, replaced under load and
 * removed while the platform serves, with no failed request; a broken new
 * version leaves the old one serving.
 */
import { afterEach, expect, test } from "bun:test";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { boot, type Booted } from "../helpers/boot";
import { connectMqtt, eventually } from "../helpers/mqtt";

let p: Booted | undefined;
afterEach(async () => {
  await p?.stop();
  p = undefined;
});

/** Version v of a plugin "ver"; GET /slow takes 300 ms, GET /slowing says how many are in it. */
const version = (v: number, extra = "") => `import { definePlugin } from "plinth";
let slowing = 0;
export default definePlugin({
  name: "ver", version: "1.0.${v}",
  migrations: ${JSON.stringify(Array.from({ length: v }, (_, i) => `CREATE TABLE t${i + 1} (x)`))},
  routes: {
    "GET /": () => ({ v: ${v} }),
    "GET /slow": async () => { slowing++; try { await Bun.sleep(300); return { v: ${v}, slow: true }; } finally { slowing--; } },
    "GET /slowing": () => ({ slowing }),
  },
});${extra}
`;

type Health = { failed: Array<{ origin: string; error: { code: string } }> };
const get = async (path: string) => {
  const res = await p!.req(path);
  return { status: res.status, body: (await res.json().catch(() => null)) as { v?: number } | null };
};

test("a plugin dropped into the folder starts serving; removing it drains and 404s", async () => {
  p = await boot({});
  writeFileSync(join(p.pluginsDir, "ver.ts"), version(1));
  await eventually(async () => (await get("/api/ver")).body?.v === 1);

  const slow = p.req("/api/ver/slow");
  await eventually(async () => ((await (await p!.req("/api/ver/slowing")).json()) as { slowing: number }).slowing === 1);
  rmSync(join(p.pluginsDir, "ver.ts"));
  const finished = await slow;
  expect(finished.status).toBe(200);
  expect(await finished.json()).toEqual({ v: 1, slow: true });
  await eventually(async () => (await get("/api/ver")).status === 404);
  expect(((await (await p.req("/api/ver")).json()) as { error: { code: string } }).error.code).toBe("PLT_SERVICE_NOT_FOUND");
});

test("a plugin that failed to load is no longer reported once its file (or its folder) is deleted", async () => {
  p = await boot({
    files: {
      "broken.ts": `export default { name: "broken", version: "1.0.0", routes: { "GET /": () => ( } };\n`,
      "folder/index.ts": `throw new Error("cannot start");\n`,
      "ok.ts": version(1),
    },
  });
  const failed = async () => ((await (await p!.req("/health")).json()) as Health).failed.map((f) => f.origin.split("/").slice(-2).join("/"));
  expect((await failed()).sort()).toEqual(["folder/index.ts", "plugins/broken.ts"]);
  rmSync(join(p.pluginsDir, "broken.ts"));
  await eventually(async () => (await failed()).length === 1);
  expect(await failed()).toEqual(["folder/index.ts"]);
  rmSync(join(p.pluginsDir, "folder"), { recursive: true });
  await eventually(async () => (await failed()).length === 0);
  expect(((await (await p.req("/health")).json()) as { status: string }).status).toBe("ok");
});

test("a removed plugin's breaker is no longer listed", async () => {
  p = await boot({ files: { "ver.ts": version(1) } });
  expect((await get("/api/ver")).status).toBe(200);
  const breakers = async () => Object.keys((await (await p!.req("/api/platform/breakers")).json()) as Record<string, unknown>);
  expect(await breakers()).toContain("ver");
  rmSync(join(p.pluginsDir, "ver.ts"));
  await eventually(async () => (await get("/api/ver")).status === 404);
  await eventually(async () => !(await breakers()).includes("ver"));
});

test("replacing a plugin under steady load fails no request; the new version runs its migrations", async () => {
  p = await boot({ files: { "ver.ts": version(1) } });
  const statuses = new Map<number, number>();
  const answers = new Map<number, number>(); // by version
  const versions = new Set<number>();
  let running = true;
  const load = async () => {
    while (running) {
      const { status, body } = await get("/api/ver");
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      if (body?.v) {
        versions.add(body.v);
        answers.set(body.v, (answers.get(body.v) ?? 0) + 1);
      }
    }
  };
  const loops = Array.from({ length: 8 }, load);
  await eventually(() => (answers.get(1) ?? 0) >= 25); // the load is on before the change...
  const changedAt = performance.now();
  writeFileSync(join(p.pluginsDir, "ver.ts"), version(2));
  await eventually(() => versions.has(2));
  const switchMs = performance.now() - changedAt;
  await eventually(() => (answers.get(2) ?? 0) >= 25); // ...and goes on after it
  running = false;
  await Promise.all(loops);

  expect([...statuses.keys()]).toEqual([200]);
  expect(statuses.get(200)!).toBeGreaterThan(50);
  expect(versions).toEqual(new Set([1, 2]));
  expect(switchMs).toBeLessThan(5_000); // the target (< 500 ms) is measured in the notes, not asserted
  const services = (await (await p.req("/api/platform/services")).json()) as { services: Array<{ name: string; version: string }> };
  expect(services.services.filter((s) => s.name === "ver").map((s) => s.version)).toEqual(["1.0.2"]);
});

test("a broken new version leaves the old one serving and is reported; fixing it replaces the old one", async () => {
  p = await boot({ files: { "ver.ts": version(1) } });
  writeFileSync(join(p.pluginsDir, "ver.ts"), version(2).replace("export default", "export default (("));
  const failed = await eventually(async () => {
    const health = (await (await p!.req("/health")).json()) as Health;
    return health.failed.find((f) => f.origin.endsWith("ver.ts"));
  });
  expect(failed.error.code).toBe("PLT_PLUGIN_LOAD");
  for (let i = 0; i < 5; i++) expect((await get("/api/ver")).body).toEqual({ v: 1 });

  writeFileSync(join(p.pluginsDir, "ver.ts"), version(3));
  await eventually(async () => (await get("/api/ver")).body?.v === 3);
  expect(((await (await p.req("/health")).json()) as Health).failed).toEqual([]);
});

test("a new plugin that takes an existing service's name is refused; the existing one is untouched", async () => {
  p = await boot({ files: { "ver.ts": version(1) } });
  writeFileSync(join(p.pluginsDir, "zz-copy.ts"), version(2));
  const failed = await eventually(async () => {
    const health = (await (await p!.req("/health")).json()) as Health;
    return health.failed.find((f) => f.origin.endsWith("zz-copy.ts"));
  });
  expect(failed.error.code).toBe("PLT_PLUGIN_DUPLICATE");
  expect((await get("/api/ver")).body).toEqual({ v: 1 });
});

test("while a replacement waits for the old version's deliveries, the old version keeps its own routes", async () => {
  // v2 puts a route first: its route indexes differ from v1's. The old version is busy with an event
  // batch (1.5 s), so the replacement is ready well before it takes the name over.
  const version = (routes: string) => `import { definePlugin } from "plinth";
let busy = 0;
export default definePlugin({
  name: "ver", version: "1.0.0",
  subscribe: { "events/emitter/#": async () => { busy++; await Bun.sleep(1_500); busy--; } },
  routes: { ${routes}, "GET /busy": () => ({ busy }) },
});`;
  const v1 = version(`"GET /a": () => ({ r: "a1" }), "GET /b": () => ({ r: "b1" })`);
  const v2 = version(`"GET /new": () => ({ r: "new" }), "GET /a": () => ({ r: "a2" }), "GET /b": () => ({ r: "b2" })`);
  await using p = await boot({ fixtures: ["emitter"], files: { "ver.ts": v1 } });
  expect((await p.req("/api/emitter", { json: { type: "x", data: {} } })).status).toBe(200);
  // The batch is in the old version's hands.
  await eventually(async () => ((await (await p.req("/api/ver/busy")).json()) as { busy: number }).busy === 1);
  writeFileSync(join(p.pluginsDir, "ver.ts"), v2);
  const answers = new Set<string>();
  const started = Date.now();
  for (;;) {
    const res = await p.req("/api/ver/a");
    answers.add(res.status === 200 ? ((await res.json()) as { r: string }).r : `status ${res.status}`);
    if (answers.has("a2") || Date.now() - started > 8_000) break;
    await Bun.sleep(10);
  }
  expect([...answers].sort()).toEqual(["a1", "a2"]);
});

test("a new version whose later migration fails leaves the schema as it was: the old version goes on serving", async () => {
  const version = (migrations: string[]) => `import { definePlugin } from "plinth";
export default definePlugin({
  name: "mig", version: "1.0.0",
  migrations: ${JSON.stringify(migrations)},
  routes: { "GET /": (ctx) => ctx.db.query("SELECT a FROM t").get() },
});`;
  const v1 = ["CREATE TABLE t (a INTEGER)", "INSERT INTO t VALUES (1)"];
  await using p = await boot({ files: { "mig.ts": version(v1) } });
  writeFileSync(join(p.pluginsDir, "mig.ts"), version([...v1, "ALTER TABLE t RENAME COLUMN a TO b", "NOT SQL"]));
  const failed = await eventually(async () => {
    const health = (await (await p.req("/health")).json()) as { failed: Array<{ origin: string; error: { code: string; message: string } }> };
    return health.failed.find((f) => f.origin.endsWith("mig.ts")) ?? null;
  }, 5_000);
  expect(failed.error.code).toBe("PLT_MIGRATION_FAILED");
  expect(failed.error.message).toContain("migration 4 failed");
  const res = await p.req("/api/mig");
  expect(res.status).toBe(200);
  expect(await res.json()).toEqual({ a: 1 });
});

test("replacing an emitter while it emits publishes each committed event once", async () => {
  const source = readFileSync(join(import.meta.dir, "../fixtures/plugins/emitter.ts"), "utf8");
  await using p = await boot({ files: { "emitter.ts": source } });
  const outside = await connectMqtt(p.mqttUrl);
  await outside.subscribe("events/emitter/#", 1);
  const sent: string[] = [];
  for (let round = 0; round < 40; round++) {
    if (round === 5) writeFileSync(join(p.pluginsDir, "emitter.ts"), `${source}\n// version 2\n`);
    await Promise.all(
      Array.from({ length: 10 }, async (_, i) => {
        const type = `n${round * 10 + i}`;
        if ((await p.req("/api/emitter", { json: { type } })).status === 200) sent.push(`emitter.${type}`);
      }),
    );
    await Bun.sleep(5); // spreads the rounds over the replacement (a load pattern, not a wait)
  }
  // A service publishes its events in the order it committed them: once one emitted after all of
  // them arrives, they (and any second copy) have.
  expect((await p.req("/api/emitter", { json: { type: "sentinel" } })).status).toBe(200);
  await outside.next((m) => m.topic === "events/emitter/sentinel", 10_000);
  const types = outside.received.filter((m) => m.topic !== "events/emitter/sentinel").map((m) => (JSON.parse(m.payload.toString()) as { type: string }).type);
  await outside.end();
  expect(types.filter((t, i) => types.indexOf(t) !== i)).toEqual([]); // none twice
  expect(types.sort()).toEqual(sent.sort());
});
