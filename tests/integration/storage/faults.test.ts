/**
 * Storage faults on a real platform, made with SQLite's own limit on a store's connection
 * (`PRAGMA max_page_count` at the pages the file has: the next write that needs a page fails with
 * SQLITE_FULL, as on a full disk): a service's store (the `cramped` fixture caps its own
 * connection), and the broker's. Clients get 507 with Retry-After, /health names the store and the
 * reason, the breaker stays closed, and once the cap is lifted everything recovers without a
 * restart: writes succeed, /health is ok, and every acknowledged write's event reaches an MQTT
 * subscriber, those whose publication failed included.
 */
import { afterEach, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { join } from "node:path";
import { boot, type Booted } from "../../helpers/boot";
import { connectMqtt, eventually, type TestClient } from "../../helpers/mqtt";

let p: Booted | undefined;
let watcher: TestClient | undefined;
afterEach(async () => {
  await watcher?.end();
  watcher = undefined;
  await p?.stop();
  p = undefined;
});

interface Health {
  status: string;
  services: Record<string, { state: string; breaker: string; storage: "ok" | { reason: string; code: string; since: string } }>;
  broker: { storage: "ok" | { reason: string; code: string; since: string } };
}

const health = async () => (await (await p!.req("/health")).json()) as Health;
const text = "x".repeat(1_500); // a note in a third of a page: a few fill what room the capped file has

/** Event ids an MQTT subscriber (persistent session, QoS 1) heard on events/cramped/#, by note id. */
async function watch(clientId: string): Promise<Set<number>> {
  const heard = new Set<number>();
  watcher = await connectMqtt(p!.mqttUrl, { clientId, clean: false });
  watcher.client.on("message", (_topic, payload) => heard.add((JSON.parse(payload.toString()) as { data: { id: number } }).data.id));
  await watcher.subscribe("events/cramped/#", 1);
  return heard;
}

/** The note ids whose events the service committed (its outbox), read from its file. */
function committed(dataDir: string): number[] {
  const db = new Database(join(dataDir, "cramped.sqlite"), { readonly: true });
  try {
    return (db.query("SELECT json_extract(data, '$.id') AS id FROM _plinth_outbox ORDER BY seq").all() as Array<{ id: number }>).map((r) => r.id);
  } finally {
    db.close();
  }
}

async function write(path = "/api/cramped"): Promise<Response> {
  return p!.req(path, { json: { text } });
}

test("a full service store: 507 PLT_STORAGE_FULL with Retry-After, /health degraded naming it and 'disk full', breaker closed, reads served; space back: 201 and ok without a restart, every acknowledged event delivered", async () => {
  p = await boot({ fixtures: ["cramped"] });
  const heard = await watch("storage-watcher");
  const acked: number[] = [];
  const ok = async (res: Response) => {
    expect(res.status).toBe(201);
    acked.push(((await res.json()) as { id: number }).id);
  };
  for (let i = 0; i < 10; i++) await ok(await write());

  expect((await p.req("/api/cramped/full", { method: "POST" })).status).toBe(200);
  // What room the file has left takes a few notes; then every write is refused, precisely.
  let first: Response | undefined;
  for (let i = 0; i < 50 && !first; i++) {
    const res = await write(i % 2 ? "/api/cramped/later" : "/api/cramped");
    if (res.status === 201) await ok(res);
    else first = res;
  }
  const statuses = new Map<string, number>();
  const refusals = [first!];
  for (let i = 0; i < 40; i++) refusals.push(await write(i % 2 ? "/api/cramped/later" : "/api/cramped"));
  for (const res of refusals) {
    const body = (await res.json()) as { error: { code: string; message: string; data: { reason: string } } };
    const key = `${res.status} ${body.error.code} retry-after=${res.headers.get("retry-after")}`;
    statuses.set(key, (statuses.get(key) ?? 0) + 1);
    expect(body.error.message).toBe("cramped: storage is full, try again later");
    expect(body.error.data.reason).toBe("disk full");
  }
  // Not one 500, and never the breaker's 503: the answer stays the precise one.
  expect([...statuses]).toEqual([["507 PLT_STORAGE_FULL retry-after=1", 41]]);

  const degraded = await health();
  expect(degraded.status).toBe("degraded");
  expect(degraded.services.cramped).toMatchObject({ state: "ready", breaker: "closed", storage: { reason: "disk full", code: "SQLITE_FULL" } });
  expect(degraded.services.platform?.storage).toBe("ok");
  expect(degraded.broker.storage).toBe("ok");
  expect((await p.req("/api/cramped")).status).toBe(200); // reads still work

  expect((await p.req("/api/cramped/room", { method: "POST" })).status).toBe(200);
  for (let i = 0; i < 10; i++) await ok(await write(i % 2 ? "/api/cramped/later" : "/api/cramped"));
  // Back to ok by itself once writes commit again (and no fault follows for a second).
  await eventually(async () => (await health()).status === "ok", 5_000, 50);
  expect((await health()).services.cramped?.storage).toBe("ok");

  // Nothing acknowledged is lost, nothing refused was committed, and the subscriber heard every one.
  expect(committed(p.dataDir).sort((a, b) => a - b)).toEqual([...acked].sort((a, b) => a - b));
  await eventually(() => acked.every((id) => heard.has(id)), 10_000, 50).catch(() => {});
  expect(acked.filter((id) => !heard.has(id))).toEqual([]);
}, 30_000);

test("a full broker store: events whose publication failed are published again, without a restart, once it has room; /health names the broker meanwhile", async () => {
  p = await boot({ fixtures: ["cramped"] });
  const heard = await watch("broker-watcher");
  // Offline, the subscriber's session queues every event in the broker's store.
  await watcher!.end();
  watcher = undefined;
  const broker = (p.platform.broker.aedes as unknown as { persistence: { db: Database } }).persistence.db;
  const { page_count: pages } = broker.query("PRAGMA page_count").get() as { page_count: number };
  broker.exec(`PRAGMA max_page_count = ${pages}`);

  const acked: number[] = [];
  for (let i = 0; i < 40; i++) {
    const res = await write();
    expect(res.status).toBe(201); // the service's own store is fine
    acked.push(((await res.json()) as { id: number }).id);
  }
  await eventually(async () => {
    const h = await health();
    return h.status === "degraded" && typeof h.broker.storage === "object" && h.broker.storage.reason === "disk full";
  }, 5_000, 50);

  broker.exec("PRAGMA max_page_count = 4294967294");
  const back = await watch("broker-watcher");
  await eventually(() => acked.every((id) => back.has(id) || heard.has(id)), 10_000, 50).catch(() => {});
  expect(acked.filter((id) => !back.has(id) && !heard.has(id))).toEqual([]);
  await eventually(async () => (await health()).status === "ok", 5_000, 50);
}, 30_000);
