/**
 * What another client of the cluster's broker can send a node (generative): any bytes, or anything
 * JSON, on the node's request and answer topics and as a node's announcement (one on node a's topic
 * that names node b included). The property: both nodes stay up, a request across them is still
 * answered, and they still list each other as up.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { boot, type Booted } from "../../helpers/boot";
import { connectMqtt, eventually, type TestClient } from "../../helpers/mqtt";
import { mosquittoMissing, startMosquitto, type Mosquitto } from "../../helpers/mosquitto";
import { checkProperty, fc } from "../../helpers/property";
import { tempDir } from "../../helpers/tmp";

const missing = mosquittoMissing();

describe.skipIf(missing !== null)(`a node's cluster topics under hostile messages${missing ? ` (skipped: ${missing})` : ""}`, () => {
  const dir = tempDir("plinth-cluster-hostile");
  let mosquitto: Mosquitto;
  let a: Booted;
  let b: Booted;
  let hostile: TestClient;

  beforeAll(async () => {
    mosquitto = await startMosquitto(dir.path);
    a = await boot({ fixtures: ["emitter"] }, { cluster: { url: mosquitto.url, node: "a", announceMs: 200 } });
    b = await boot({}, { cluster: { url: mosquitto.url, node: "b", announceMs: 200 } });
    hostile = await connectMqtt(mosquitto.url);
    await eventually(async () => (await b.req("/api/emitter", { json: { type: "ready" } })).status === 200);
  });
  afterAll(async () => {
    await hostile?.end();
    await a?.stop();
    await b?.stop();
    mosquitto?.proc.kill();
    dir[Symbol.dispose]();
  });

  const request = fc.record({
    id: fc.oneof(fc.integer(), fc.string(), fc.constant(null)),
    from: fc.oneof(fc.constant("b"), fc.string()),
    service: fc.oneof(fc.constant("emitter"), fc.string()),
    message: fc.oneof(fc.jsonValue(), fc.record({ t: fc.constantFrom("http", "action", "bury", "redrive", "stop"), action: fc.string(), req: fc.jsonValue() })),
    timeoutMs: fc.oneof(fc.integer(), fc.double()),
  });
  const answer = fc.record({ id: fc.nat(), ok: fc.boolean(), value: fc.jsonValue(), error: fc.jsonValue() });
  const json = fc.oneof(
    fc.jsonValue(),
    request,
    fc.array(fc.oneof(request, fc.jsonValue()), { maxLength: 4 }),
    fc.array(fc.oneof(answer, fc.jsonValue()), { maxLength: 4 }),
    fc.record({ node: fc.oneof(fc.constant("evil"), fc.constant("b"), fc.string()), state: fc.constantFrom("up", "gone", "left", "x"), url: fc.jsonValue(), services: fc.jsonValue(), manifests: fc.oneof(fc.jsonValue(), fc.constant([{ name: "emitter", routes: "x", actions: [], idempotent: [] }])), at: fc.jsonValue() }),
  );
  const payload = fc.oneof(fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b)), json.map((v) => Buffer.from(JSON.stringify(v) ?? "null")));
  const topic = fc.constantFrom("plinth/rpc/a", "plinth/rpc/b", "plinth/rpc/a/reply", "plinth/rpc/b/reply", "plinth/nodes/evil", "plinth/nodes/a");

  test("any message on a node's topics: both nodes stay up, requests across them are still answered", async () => {
    await checkProperty("cluster topics", { runs: 150, ms: 6_000 }, [fc.array(fc.tuple(topic, payload), { minLength: 1, maxLength: 8 })], async (messages) => {
      for (const [t, p] of messages) await hostile.client.publishAsync(t, p, { qos: 1 });
      const res = await b.req("/api/emitter", { json: { type: "still" } });
      expect(res.status).toBe(200);
      expect((await a.req("/health")).status).toBe(200);
    });
    // Node a's own announcement, overwritten by garbage, comes back within its announce period.
    const nodes = await eventually(async () => {
      const listed = (await (await b.req("/api/platform/nodes")).json()) as Array<{ node: string; state: string }>;
      return listed.some((n) => n.node === "a" && n.state === "up") ? listed : null;
    });
    expect(nodes.find((n) => n.node === "b")?.state).toBe("up");
  }, 30_000);
});
