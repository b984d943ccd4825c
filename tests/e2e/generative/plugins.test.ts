/**
 * Generated plugin behaviour against the compiled binary: a plugin (fixture `obeys`) throws what is
 * not an Error, returns, emits and calls with values JSON cannot carry (BigInt, cycles, 100,000
 * levels of nesting, functions, symbols), and emits in bulk while a slow outside subscriber reads
 * `events/#` at QoS 1. The property for every request: an answer with a JSON error or a normal
 * body, nothing of the server's in it, the process still up; at the end every acknowledged write is
 * stored and every event of an acknowledged request reached the subscribing plugin (`tally`).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { OPEN_AUTH, startBinary, type Running } from "../../helpers/binary";
import { NO_BREAKER } from "../../helpers/boot";
import { leaks } from "../../helpers/leaks";
import { eventually } from "../../helpers/mqtt";
import { writePlugins } from "../../helpers/plugins";
import { checkProperty, fc } from "../../helpers/property";
import { slowSubscriber, type SlowSubscriber } from "../../helpers/slow-subscriber";
import { tempDir } from "../../helpers/tmp";

const dir = tempDir("plinth-gen-plugins");
let app: Running;
let slow: SlowSubscriber;

beforeAll(async () => {
  writePlugins(dir.join("plugins"), { fixtures: ["obeys", "tally"] });
  // The breaker stays closed: most of these requests fail on purpose, and the checks at the end must reach the plugin.
  writeFileSync(
    dir.join("platform.config.ts"),
    `export default { ${OPEN_AUTH}, gateway: { requestTimeoutMs: 15000 }, calls: { timeoutMs: 5000 }, breaker: ${JSON.stringify(NO_BREAKER)} };\n`,
  );
  app = await startBinary(dir.path, ["--no-watch"]);
  slow = await slowSubscriber(app.mqttUrl, "events/#", 2);
});
afterAll(async () => {
  await slow?.[Symbol.asyncDispose]();
  await app?.stop("SIGKILL");
  dir[Symbol.dispose]();
});

interface Act {
  write: boolean;
  do: "return" | "throw" | "reject" | "emit" | "call";
  kind: string;
  size: number;
}

const VALUE_KINDS = ["plain", "bigint", "circular", "deep", "function", "symbol", "undefined", "nan", "map", "huge", "date"];
const THROWN_KINDS = ["string", "null", "undefined", "number", "object", "symbol", "huge", "cyclic-cause", "error"];

const size = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 50 }) },
  { weight: 2, arbitrary: fc.integer({ min: 50, max: 5_000 }) },
  { weight: 1, arbitrary: fc.integer({ min: 5_000, max: 100_000 }) },
);

const act: fc.Arbitrary<Act> = fc.oneof(
  fc.record({ write: fc.boolean(), do: fc.constantFrom("return" as const, "call" as const), kind: fc.constantFrom(...VALUE_KINDS), size }),
  fc.record({ write: fc.boolean(), do: fc.constantFrom("throw" as const, "reject" as const), kind: fc.constantFrom(...THROWN_KINDS), size }),
  fc.record({ write: fc.boolean(), do: fc.constant("emit" as const), kind: fc.constantFrom("plain", "plain", "plain", ...VALUE_KINDS), size }),
);

/** The cases found by hand before these properties existed, tried first. */
const KNOWN: Act[] = [
  { write: true, do: "emit", kind: "plain", size: 100_000 },
  { write: true, do: "return", kind: "deep", size: 100_000 },
];

test("generated plugin behaviour: each request answered precisely, the process up, acknowledged writes and events kept", async () => {
  const writes: Array<{ id: number; tag: string }> = [];
  const emitted: Array<{ tag: string; n: number }> = [];
  let seq = 0;
  const runs = await checkProperty("plugins", { runs: 200, ms: 30_000, examples: KNOWN.map((a) => [a]) }, [act], async (a) => {
    const tag = `t${++seq}`;
    const res = await fetch(`${app.url}/api/obeys/act`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...a, tag }),
      signal: AbortSignal.timeout(25_000),
    }).catch(async (err: Error) => {
      await Promise.race([app.proc.exited, Bun.sleep(500)]);
      throw new Error(`no answer (${err.message}); exit code ${app.proc.exitCode}; log:\n${app.log().slice(-2000)}`);
    });
    const text = await res.text();
    expect(app.proc.exitCode, `the process exited; log:\n${app.log().slice(-3000)}`).toBeNull();
    const answer = `${res.status} ${text.slice(0, 300)}`;
    if (res.status >= 400) {
      expect(leaks(text), `nothing of the server's in: ${answer}`).toBeNull();
      const error = (JSON.parse(text) as { error: { code: unknown; message: unknown } }).error;
      expect(String(error.code), answer).toMatch(/^[A-Z][A-Z0-9_]+$/);
      expect(typeof error.message, answer).toBe("string");
      // What a handler throws or returns wrongly is its own fault (5xx); a call it makes may fail with the callee's code.
      if (a.do !== "call") expect(res.status, `a plugin's fault is a 5xx: ${answer}`).toBeGreaterThanOrEqual(500);
      return;
    }
    expect(res.status, answer).toBeLessThan(300);
    const body = text ? (JSON.parse(text) as { id?: number | null }) : {};
    if (a.write && typeof body.id === "number") writes.push({ id: body.id, tag });
    if (a.do === "emit" && a.size > 0) emitted.push({ tag, n: a.size });
  });
  expect(runs).toBeGreaterThan(KNOWN.length);

  // A worker stopped for its behaviour (heap limit, a blocked event loop) restarts: the checks wait for it.
  await eventually(async () => (await fetch(`${app.url}/api/obeys/writes/0`)).ok, 15_000);
  for (const { id, tag } of writes) {
    const row = (await (await fetch(`${app.url}/api/obeys/writes/${id}`)).json()) as { tag?: string };
    expect(row.tag, `write ${id} of ${tag}: ${JSON.stringify(row)}`).toBe(tag);
  }
  // Every event of an acknowledged request reaches the subscriber (delivery is asynchronous).
  const deadline = Date.now() + 60_000;
  for (const { tag, n } of emitted) {
    let seen = 0;
    while (Date.now() < deadline) {
      seen = ((await (await fetch(`${app.url}/api/tally/${tag}`)).json()) as { n: number }).n;
      if (seen >= n) break;
      await Bun.sleep(100);
    }
    expect(seen, `events of ${tag} delivered`).toBe(n);
  }
  expect(slow.received.length).toBeGreaterThan(0);
  expect(app.proc.exitCode).toBeNull();
}, 150_000);
