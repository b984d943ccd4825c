/**
 * A full disk under steady load, on the compiled binary. The data folder is a small tmpfs (32 MB:
 * room for a few seconds of load, whose write-ahead logs alone take several), filled up with a file
 * while clients keep posting orders, then emptied again. While full: every refused write
 * is 507 PLT_STORAGE_FULL with Retry-After (never a 500, never the breaker's 503), /health and
 * `plinth status` say degraded and name the service and "disk full". Once there is room: writes are
 * acknowledged again and /health is ok, without a restart; every event committed before, during and
 * after reaches an outside MQTT subscriber (a persistent session, QoS 1), including those whose
 * publication or acks failed on the full disk.
 *
 * Mounting a tmpfs needs root (or CAP_SYS_ADMIN). Where it cannot be mounted the test runs, and says
 * so in its name, with SQLite's `PRAGMA max_page_count` on one service's own connection instead
 * (the `cramped` fixture): the same answers and recovery, on a simulated full disk.
 */
import { expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { closeSync, mkdirSync, openSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { OPEN_AUTH, runBinary, startBinary } from "../../helpers/binary";
import { connectMqtt, eventually } from "../../helpers/mqtt";
import { writePlugins } from "../../helpers/plugins";
import { tempDir } from "../../helpers/tmp";

const CLIENTS = 4;
/** Each client's pause between requests: a steady load, not a flood (the disk would fill on its own). */
const PACE_MS = 2;

/** Mounts a 32 MB tmpfs at `path`; false where this process may not. */
function mountTmpfs(path: string): boolean {
  mkdirSync(path, { recursive: true });
  return Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", path], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;
}

/** Writes `file` until the file system is full (ENOSPC); returns how many bytes it took. */
function fillUp(file: string): number {
  const fd = openSync(file, "w");
  const chunk = Buffer.alloc(16 * 1024, 1);
  let written = 0;
  try {
    for (;;) written += writeSync(fd, chunk);
  } catch (err) {
    if ((err as { code?: string }).code !== "ENOSPC") throw err;
  } finally {
    closeSync(fd);
  }
  return written;
}

interface Health {
  status: string;
  services: Record<string, { breaker: string; storage: "ok" | { reason: string; code: string } }>;
}

const probe = tempDir("plinth-e2e-tmpfs-probe");
const real = mountTmpfs(probe.join("mnt"));
if (real) Bun.spawnSync(["umount", probe.join("mnt")]);
probe[Symbol.dispose]();

const NAME = real
  ? "a real full disk (a tmpfs) under steady POST /api/orders: 507 with Retry-After, /health and plinth status degraded naming the service and 'disk full'; room again: 201 and ok without a restart, every committed event delivered"
  : "a full store simulated with SQLite's max_page_count (no tmpfs can be mounted here) under steady POST /api/cramped: 507 with Retry-After, /health and plinth status degraded naming the service and 'disk full'; room again: 201 and ok without a restart, every committed event delivered";

test(NAME, async () => {
  using dir = tempDir("plinth-e2e-disk-full");
  const service = real ? "orders" : "cramped";
  writePlugins(dir.join("plugins"), real ? { examples: ["orders", "inventory"] } : { fixtures: ["cramped"] });
  // Every event stays in the service's log, to be counted at the end.
  writeFileSync(dir.join("platform.config.ts"), `export default { ${OPEN_AUTH}, events: { retainSent: 10_000_000 } };\n`);
  const data = dir.join("disk/data");
  if (real) expect(mountTmpfs(dir.join("disk"))).toBe(true);
  try {
    await using app = await startBinary(dir.path, ["--data", data]);
    const heard = new Set<string>();
    // A store that fails to record a delivery in flight ends that client's connection (aedes): it
    // reconnects, as clients do, and its session's queue (and the events relayed again) come then.
    const watcher = await connectMqtt(app.mqttUrl, { clientId: "disk-full-watcher", clean: false, reconnectPeriod: 100 });
    watcher.client.on("message", (_topic, payload) => heard.add((JSON.parse(payload.toString()) as { id: string }).id));
    await watcher.subscribe(`events/${service}/#`, 1);

    type Phase = "before" | "full" | "after";
    let phase: Phase = "before";
    const acked: Record<Phase, number> = { before: 0, full: 0, after: 0 };
    const refused = new Map<string, number>();
    const messages = new Set<string>();
    let running = true;
    const client = async () => {
      while (running) {
        const at = phase;
        let key: string;
        try {
          const res = await fetch(`${app.url}/api/${service}`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(real ? { sku: "apple", qty: 1 } : { text: "x".repeat(1_500) }),
          });
          const body = (await res.json()) as { error?: { code: string; message: string } };
          if (res.status === 201) {
            acked[at]++;
            await Bun.sleep(PACE_MS);
            continue;
          }
          key = `${at}: ${res.status} ${body.error?.code} retry-after=${res.headers.get("retry-after")}`;
          messages.add(body.error?.message ?? "");
        } catch (err) {
          key = `${at}: ${String(err)}`;
        }
        refused.set(key, (refused.get(key) ?? 0) + 1);
        await Bun.sleep(PACE_MS * 5); // told to retry later
      }
    };
    const health = async () => (await (await fetch(`${app.url}/health`)).json()) as Health;
    const refusedIn = (p: Phase) => [...refused].filter(([k]) => k.startsWith(p)).reduce((n, [, c]) => n + c, 0);
    const filler = join(dir.join("disk"), "filler");

    /** Before, full, after: the disk fills up and empties again under the running load. */
    const phases = async () => {
      await eventually(() => acked.before >= 100, 10_000, 10);
      phase = "full"; // requests sent from now on may find the disk full
      if (real) fillUp(filler);
      else expect((await fetch(`${app.url}/api/cramped/full`, { method: "POST" })).status).toBe(200);
      await eventually(() => refusedIn("full") >= 400, 15_000, 10);

      const degraded = await health();
      expect(degraded.status).toBe("degraded");
      const failing = Object.entries(degraded.services).filter(([, s]) => s.storage !== "ok");
      expect(failing.length).toBeGreaterThan(0);
      for (const [, s] of failing) expect(s.storage).toMatchObject({ reason: "disk full", code: "SQLITE_FULL" });
      expect(failing.every(([, s]) => s.breaker === "closed")).toBe(true);
      const status = await runBinary(dir.path, ["status", "--url", app.url, "--key", app.adminKey]);
      expect(status.stdout).toContain("status: degraded");
      expect(status.stdout).toMatch(new RegExp(`storage failing: (${failing.map(([n]) => n).join("|")}): disk full \\(SQLITE_FULL\\)`));

      // Room again, the load still running: the service takes writes and /health is ok, by themselves.
      if (real) rmSync(filler);
      else expect((await fetch(`${app.url}/api/cramped/room`, { method: "POST" })).status).toBe(200);
      phase = "after";
      await eventually(() => acked.after >= 100, 15_000, 10);
      await eventually(async () => (await health()).status === "ok", 15_000, 50);
    };
    const clients = Array.from({ length: CLIENTS }, client);
    try {
      await phases();
    } finally {
      running = false;
      await Promise.all(clients);
    }

    // While full, every refusal was the precise one; before and after, none.
    expect([...refused.keys()].sort()).toEqual(["full: 507 PLT_STORAGE_FULL retry-after=1"]);
    for (const message of messages) expect(message).toMatch(/^[a-z]+: storage is full, try again later$/);

    // Every event committed (acknowledged or not: a commit whose answer was lost still counts) reaches the subscriber.
    const events = new Database(join(data, `${service}.sqlite`), { readonly: true });
    const committed = (events.query("SELECT id FROM _plinth_outbox WHERE type = ?").all(real ? "created" : "noted") as Array<{ id: string }>).map((r) => r.id);
    events.close();
    expect(committed.length).toBeGreaterThanOrEqual(acked.before + acked.full + acked.after);
    await eventually(() => committed.every((id) => heard.has(id)), 20_000, 50).catch(() => {});
    expect(committed.filter((id) => !heard.has(id))).toEqual([]);
    // And is marked sent, though the disk refused some of those marks: none is left for the next start to publish again.
    const unsent = () =>
      Object.fromEntries((real ? ["orders", "inventory"] : ["cramped"]).map((name) => {
        const db = new Database(join(data, `${name}.sqlite`), { readonly: true });
        const { n } = db.query("SELECT count(*) AS n FROM _plinth_outbox_state WHERE NOT sent").get() as { n: number };
        db.close();
        return [name, n];
      }));
    await eventually(() => Object.values(unsent()).every((n) => n === 0), 5_000, 50).catch(() => {});
    expect(Object.values(unsent())).toEqual(real ? [0, 0] : [0]);
    console.log(`${service}: ${acked.before} acknowledged before, ${acked.full} while full, ${acked.after} after; ${refusedIn("full")} refused; ${committed.length} events committed, ${committed.filter((id) => heard.has(id)).length} delivered`);
    await watcher.end();
  } finally {
    if (real) Bun.spawnSync(["umount", "-l", dir.join("disk")]);
  }
}, 90_000);
