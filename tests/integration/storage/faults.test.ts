/**
 * Storage faults on a real platform, made with SQLite's own limit on a store's connection
 * (`PRAGMA max_page_count` at the pages the file has: the next write that needs a page fails with
 * SQLITE_FULL, as on a full disk): a service's store (the `cramped` fixture caps its own
 * connection), and the broker's. Clients get 507 with Retry-After, /health names the store and the
 * reason, the breaker stays closed, and once the cap is lifted everything recovers without a
 * restart: writes succeed, /health is ok, and every acknowledged write's event reaches an MQTT
 * subscriber, those whose publication failed included.
 *
 * And a file system that turns read-only under load, for real: an ext4 image on a loop device,
 * mounted errors=remount-ro, which the kernel remounts read-only when told of an error (its
 * trigger_fs_error), open files and all. That needs root, mkfs.ext4 and a loop device; where they
 * are missing the test says so in its name and is skipped (the classification of a read-only store
 * is also tested on real files in tests/runtime/storage/faults.test.ts).
 */
import { afterEach, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { boot, type Booted, ON_MAIN_THREAD, inside } from "../../helpers/boot";
import { connectMqtt, eventually, type TestClient } from "../../helpers/mqtt";
import { tempDir } from "../../helpers/tmp";

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
  p = await boot({ fixtures: ["cramped"] }, {}, ON_MAIN_THREAD);
  const heard = await watch("broker-watcher");
  // Offline, the subscriber's session queues every event in the broker's store.
  await watcher!.end();
  watcher = undefined;
  const broker = (inside(p).aedes as unknown as { persistence: { db: Database } }).persistence.db;
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

/**
 * An 8 MB ext4 file system on a loop device, mounted errors=remount-ro, and the way to make the
 * kernel turn it read-only under its open files. Null where that cannot be done here.
 */
function ext4Volume(): { dir: string; turnReadOnly(): void; [Symbol.dispose](): void } | null {
  const tmp = tempDir("plinth-ext4");
  const run = (cmd: string[]) => Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  const dir = tmp.join("mnt");
  mkdirSync(dir);
  const image = tmp.join("image");
  writeFileSync(image, "");
  const ok =
    process.getuid?.() === 0 &&
    run(["truncate", "-s", "8M", image]).exitCode === 0 &&
    run(["mkfs.ext4", "-q", "-F", image]).exitCode === 0 &&
    run(["mount", "-o", "loop,errors=remount-ro", image, dir]).exitCode === 0;
  if (!ok) {
    tmp[Symbol.dispose]();
    return null;
  }
  const device = basename(run(["findmnt", "-n", "-o", "SOURCE", dir]).stdout.toString().trim());
  const trigger = `/sys/fs/ext4/${device}/trigger_fs_error`;
  const dispose = () => {
    run(["umount", "-l", dir]);
    tmp[Symbol.dispose]();
  };
  if (!device || !existsSync(trigger)) {
    dispose();
    return null;
  }
  return { dir, turnReadOnly: () => writeFileSync(trigger, "1"), [Symbol.dispose]: dispose };
}

const volume = ext4Volume();
volume?.[Symbol.dispose]();
const READ_ONLY = "the file system turns read-only under load (a real ext4 volume the kernel remounts read-only): 503 PLT_STORAGE_UNAVAILABLE with Retry-After, never a 500 nor the breaker's 503; /health degraded naming the service and 'read-only'";

test.skipIf(volume === null)(volume === null ? `${READ_ONLY} (skipped: needs root, mkfs.ext4, a loop device and ext4's trigger_fs_error)` : READ_ONLY, async () => {
  using ext4 = ext4Volume()!;
  p = await boot({ fixtures: ["cramped"] }, { data: { dir: join(ext4.dir, "data") } });
  const after = new Map<string, number>();
  let readOnly = false;
  let acked = 0;
  // Four clients writing one after another each, before and after the file system turns read-only.
  const client = async () => {
    for (let i = 0; i < 60; i++) {
      if (i === 20 && !readOnly) {
        readOnly = true;
        ext4.turnReadOnly();
      }
      const res = await write(i % 2 ? "/api/cramped/later" : "/api/cramped");
      const body = (await res.json()) as { error?: { code: string; data?: { reason: string } } };
      if (!readOnly || i < 20) {
        if (res.status === 201) acked++;
        continue;
      }
      const key = res.status === 201 ? "201" : `${res.status} ${body.error?.code} ${body.error?.data?.reason} retry-after=${res.headers.get("retry-after")}`;
      after.set(key, (after.get(key) ?? 0) + 1);
    }
  };
  await Promise.all([client(), client(), client(), client()]);
  expect(acked).toBeGreaterThanOrEqual(60);
  // Requests already committed when the kernel turned the file system read-only may still answer 201.
  after.delete("201");
  expect([...after.keys()]).toEqual(["503 PLT_STORAGE_UNAVAILABLE read-only retry-after=1"]);

  const h = await health();
  expect(h.status).toBe("degraded");
  expect(h.services.cramped).toMatchObject({ state: "ready", breaker: "closed", storage: { reason: "read-only" } });
  expect((await p.req("/api/cramped")).status).toBe(200); // reads still work
  // A file system the kernel made read-only after an error stays so until it is unmounted and
  // checked: recovery (remount) cannot be shown here; see the full-store tests above for it.
}, 30_000);

test("a subscriber whose store is full: its events wait, without using up their attempts or being dead-lettered, and are handled once it has room", async () => {
  p = await boot({ examples: ["orders", "inventory"], fixtures: ["cramped"] }, { events: { maxAttempts: 2, retryDelayMs: 10 } });
  expect((await p.req("/api/cramped/full", { method: "POST" })).status).toBe(200);
  for (let i = 0; i < 5; i++) expect((await p.req("/api/orders", { json: { sku: "apple", qty: 1 } })).status).toBe(201);
  await eventually(async () => (await health()).services.cramped!.storage !== "ok", 5_000, 20);
  // A window on purpose: far more than maxAttempts × retryDelayMs, so counted attempts would have buried the first event by now.
  await Bun.sleep(300);
  expect((await p.req("/api/cramped/room", { method: "POST" })).status).toBe(200);
  const notes = async () => ((await (await p!.req("/api/cramped")).json()) as { notes: number }).notes;
  await eventually(async () => (await notes()) === 5, 10_000, 20);
  expect(await (await p.req("/api/platform/deadletters/cramped")).json()).toEqual([]);
}, 30_000);
