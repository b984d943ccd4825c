/**
 * Durable events across nodes, on a real Mosquitto: a subscribing plugin on node b gets every event an
 * emitting service on node a commits, in commit order, each once in effect, read from a's log over the
 * cluster: live, after b was stopped and started again, and after a (the source) was down. Each test
 * checks everything emitted so far, in any order the tests run.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { boot, type Booted } from "../../helpers/boot";
import { eventually } from "../../helpers/mqtt";
import { mosquittoMissing, startMosquitto, type Mosquitto } from "../../helpers/mosquitto";
import { tempDir } from "../../helpers/tmp";

const missing = mosquittoMissing();


describe.skipIf(missing !== null)(`durable events across nodes on Mosquitto${missing ? ` (skipped: ${missing})` : ""}`, () => {
  const dir = tempDir("plinth-cluster-events");
  let mosquitto: Mosquitto;
  let a: Booted;
  let b: Booted;
  const bootA = async () => (a = await boot({ fixtures: ["emitter"] }, { cluster: { url: mosquitto.url, node: "a", announceMs: 200 }, data: { dir: dir.join("a") } }));
  const bootB = async () => (b = await boot({ fixtures: ["sink"] }, { cluster: { url: mosquitto.url, node: "b", announceMs: 200 }, data: { dir: dir.join("b") } }));
  let next = 0;
  const emit = async (count: number) => {
    for (let i = 0; i < count; i++) expect((await a.req("/api/emitter", { json: { type: "made", data: { n: next++ } } })).status).toBe(200);
  };
  const seen = async () => (await (await b.req("/api/sink")).json()) as number[];
  const all = (n: number) => Array.from({ length: n }, (_, i) => i);
  const reaches = (n: number) => eventually(async () => ((await seen()).length >= n ? seen() : null), 10_000);

  beforeAll(async () => {
    mosquitto = await startMosquitto(dir.path);
    await bootA();
    await bootB();
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    mosquitto?.proc.kill();
    dir[Symbol.dispose]();
  });

  test("live: every event, in commit order, once", async () => {
    await emit(20);
    expect(await reaches(next)).toEqual(all(next));
  });

  test("a subscriber node that was down catches up on what was committed meanwhile", async () => {
    await b.stop();
    await emit(15);
    await bootB();
    expect(await reaches(next)).toEqual(all(next));
  });

  test("a source node that was down: the subscriber waits, and gets what it commits once it is back", async () => {
    await a.stop();
    await Bun.sleep(300);
    await bootA();
    await emit(5);
    expect(await reaches(next)).toEqual(all(next));
    await Bun.sleep(300); // nothing more, nothing twice
    expect(await seen()).toEqual(all(next));
  });
});
