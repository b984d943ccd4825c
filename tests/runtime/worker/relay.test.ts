/**
 * The relay of committed events, from the plugin's outbox to the broker and back: a real worker
 * (entry.ts) on a real SQLite file, started by its host (WorkerHost), publishing on its events port
 * to the bus's end of it (serveEventPort) over sends that refuse what the test says (as the broker
 * does when its store is full). A refused publish must leave the outbox rows unsent, and the worker
 * must publish them again later, without a restart; once the broker takes them, they are marked
 * sent and published no more.
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { mkdirSync, writeFileSync } from "node:fs";
import { serveEventPort } from "../../../runtime/bus/event-port";
import { hostConfig } from "../../helpers/host-config";
import { createLogger } from "../../../runtime/log";
import { WorkerHost } from "../../../runtime/worker/host";
import { eventually } from "../../helpers/eventually";
import { tempDir, type TempDir } from "../../helpers/tmp";

const PLUGIN = `
export default {
  name: "w",
  version: "1.0.0",
  actions: {
    emit: (ctx) => {
      for (const type of ctx.params) ctx.emit(type, { type });
      return ctx.params.length;
    },
  },
};
`;

interface Attempt {
  seq: number;
  type: string;
  at: number;
  taken: boolean;
}

/**
 * Sends that record each attempt and take it unless `refuses` says no. `attempts(n)` resolves once
 * n sends were made: the test waits for the publishes it expects, never for time.
 */
class ScriptedBus {
  readonly made: Attempt[] = [];
  refuses: (type: string) => boolean = () => false;
  private waiters: Array<{ n: number; resolve: () => void }> = [];

  readonly send = (topic: string, payload: string, done: (err?: Error | null) => void): void => {
    const { sequence } = JSON.parse(payload) as { sequence: string };
    const type = topic.split("/").slice(2).join("/");
    const taken = !this.refuses(type);
    this.made.push({ seq: Number(sequence), type, at: performance.now(), taken });
    for (const w of this.waiters.filter((w) => this.made.length >= w.n)) {
      this.waiters.splice(this.waiters.indexOf(w), 1);
      w.resolve();
    }
    done(taken ? null : new Error("broker store: disk full"));
  };

  /** Resolves once `n` sends were made (at most `timeoutMs` later, else rejects naming what was made). */
  attempts(n: number, timeoutMs = 5_000): Promise<void> {
    if (this.made.length >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${n} publishes expected, ${this.made.length} made: ${JSON.stringify(this.made)}`)), timeoutMs);
      this.waiters.push({ n, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }

  /** Seqs the broker took, in the order it took them. */
  taken(): number[] {
    return this.made.filter((a) => a.taken).map((a) => a.seq);
  }
}

let dir: TempDir;
let pluginPath: string;
const hosts: WorkerHost[] = [];

beforeAll(() => {
  dir = tempDir("plinth-relay");
  pluginPath = dir.join("w.js");
  writeFileSync(pluginPath, PLUGIN);
});
afterEach(async () => {
  await Promise.all(hosts.splice(0).map((h) => h.stop(1_000)));
});
afterAll(() => dir[Symbol.dispose]());

let dataSeq = 0;
const newDataDir = () => {
  const dataDir = dir.join(`data-${++dataSeq}`);
  mkdirSync(dataDir, { recursive: true });
  return dataDir;
};

/** A started host whose worker publishes on a port `bus` serves, as the loader has it (`relay`: what is unsent first). */
async function started(bus: ScriptedBus, dataDir: string, relay = false): Promise<WorkerHost> {
  const h = host(dataDir);
  await h.start();
  serveEventPort(bus.send, h.eventsPort(relay)!, "w", null, createLogger({ level: "silent" }));
  return h;
}

function host(dataDir: string): WorkerHost {
  const log = createLogger({ level: "silent" });
  const h = new WorkerHost({
    source: { kind: "file", path: pluginPath },
    config: hostConfig(dataDir),
    log,
    configFor: () => ({}),
    onCall: async () => null,
    onEvents: () => {},
  });
  hosts.push(h);
  return h;
}

const emit = (h: WorkerHost, ...types: string[]) => h.request({ t: "action", action: "emit", params: types, caller: null }, 2_000);

/** The outbox as the plugin's file holds it (another connection: only what is committed). */
function rows(dataDir: string): Array<{ seq: number; type: string; sent: boolean }> {
  const db = new Database(`${dataDir}/w.sqlite`, { readonly: true });
  try {
    return (db.query("SELECT seq, type, sent FROM _plinth_outbox_state ORDER BY seq").all() as Array<{ seq: number; type: string; sent: number }>).map(
      (r) => ({ ...r, sent: r.sent === 1 }),
    );
  } finally {
    db.close();
  }
}

/** The file once `check` holds: the worker writes acks on its own time (with a group, or within 20 ms). */
const until = (dataDir: string, check: (r: ReturnType<typeof rows>) => boolean) => eventually(() => {
  const r = rows(dataDir);
  return check(r) ? r : null;
}, 3_000, 10);

test("a refused publish leaves the rows unsent; the worker publishes them again, without a restart, and once taken they are marked sent and published no more", async () => {
  const bus = new ScriptedBus();
  const dataDir = newDataDir();
  const h = await started(bus, dataDir);
  bus.refuses = () => true;

  expect(await emit(h, "a", "b")).toBe(2);
  // The first publish and the worker's relay of the same rows: both refused.
  await bus.attempts(4);
  expect(bus.made.map((a) => [a.seq, a.taken])).toEqual([
    [1, false],
    [2, false],
    [1, false],
    [2, false],
  ]);
  // The worker handed them over again because they were unsent in its file, and they still are.
  expect(rows(dataDir)).toEqual([
    { seq: 1, type: "a", sent: false },
    { seq: 2, type: "b", sent: false },
  ]);

  bus.refuses = () => false;
  const refused = bus.made.length;
  await bus.attempts(refused + 2);
  expect(bus.taken()).toEqual([1, 2]);
  await until(dataDir, (r) => r.every((row) => row.sent));

  // Taken means done: a later commit publishes its own event alone, and nothing goes out twice.
  expect(await emit(h, "c")).toBe(1);
  await until(dataDir, (r) => r.length === 3 && r.every((row) => row.sent));
  await h.stop();
  expect(bus.taken()).toEqual([1, 2, 3]);
});

test("rows refused at stop stay unsent in the file, and the next start publishes them", async () => {
  const bus = new ScriptedBus();
  const dataDir = newDataDir();
  const first = await started(bus, dataDir);
  bus.refuses = () => true;
  expect(await emit(first, "a", "b")).toBe(2);
  await bus.attempts(2);
  // A clean stop writes every ack the worker holds before the database closes: none for refused rows.
  await first.stop();
  expect(rows(dataDir).map((r) => r.sent)).toEqual([false, false]);

  bus.refuses = () => false;
  // Its events port publishes what is unsent at once, as the loader has it once the services are registered.
  const second = await started(bus, dataDir, true);
  await bus.attempts(4);
  expect(bus.taken()).toEqual([1, 2]);
  await second.stop();
  expect(rows(dataDir).map((r) => r.sent)).toEqual([true, true]);
});

test("only the refused rows go out again: events the broker took are acked and not relayed", async () => {
  const bus = new ScriptedBus();
  const dataDir = newDataDir();
  const h = await started(bus, dataDir);
  bus.refuses = (type) => type === "refused";

  expect(await emit(h, "refused")).toBe(1);
  expect(await emit(h, "taken")).toBe(1);
  // Both relays after the refusal (100 ms, then 200 ms on) hand over seq 1 alone: seq 2 was acked first.
  await bus.attempts(4);
  expect(bus.made.map((a) => [a.seq, a.taken])).toEqual([
    [1, false],
    [2, true],
    [1, false],
    [1, false],
  ]);
  expect(rows(dataDir).map((r) => [r.seq, r.sent])).toEqual([
    [1, false],
    [2, true],
  ]);

  bus.refuses = () => false;
  await bus.attempts(5);
  await h.stop();
  expect(bus.taken()).toEqual([2, 1]);
  expect(rows(dataDir).map((r) => r.sent)).toEqual([true, true]);
});

test("failures in a row back off: each relay waits about twice as long as the one before", async () => {
  const bus = new ScriptedBus();
  const h = await started(bus, newDataDir());
  bus.refuses = () => true;
  expect(await emit(h, "a")).toBe(1);
  await bus.attempts(4);
  const gaps = bus.made.slice(1).map((a, i) => a.at - bus.made[i]!.at);
  // 100 ms, 200 ms, 400 ms (lower bounds only: a slow machine may take longer, never less).
  expect(gaps[0]).toBeGreaterThanOrEqual(95);
  expect(gaps[1]).toBeGreaterThanOrEqual(195);
  expect(gaps[2]).toBeGreaterThanOrEqual(395);
});
