/**
 * What aedes does on its own store, that the SQLite store does differently on purpose. Each test here
 * pins an upstream behaviour: when one fails, aedes or aedes-persistence changed, and the rule in
 * runtime/broker/persistence named by the test can be revisited.
 *
 * [MQTT-4.3.3-1] aedes-persistence (memory) matches a queued packet by broker id and counter first. A
 * PUBREL has neither, so the second PUBREC of a session whose first PUBREL still awaits its PUBCOMP
 * renumbers that first PUBREL instead of replacing its own PUBLISH: the PUBLISH stays queued and is
 * sent again at the next resume, although the client completed it (persistence/outgoing.ts `release`).
 */
import { afterAll, expect, test } from "bun:test";
import { createServer, type Server } from "node:net";
import { Aedes } from "aedes";
import { SqlitePersistence } from "../../../../runtime/broker/persistence/sqlite";
import * as reports from "../../../helpers/broker-reports";
import { rawSession, uniqueId, type RawClient } from "../../../helpers/raw-mqtt";
import { tempDir } from "../../../helpers/tmp";

const dir = tempDir("plinth-broker-upstream");
afterAll(() => dir[Symbol.dispose]());

/** A bare aedes (no Plinth wrapper, no conformance rules) on TCP, on the given store or its own. */
async function bareAedes(persistence?: unknown): Promise<{ url: string; aedes: Aedes; [Symbol.asyncDispose](): Promise<void> }> {
  const aedes = await Aedes.createBroker(persistence ? { persistence: persistence as never } : {});
  const server: Server = createServer((socket) => aedes.handle(socket));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `mqtt://127.0.0.1:${(server.address() as { port: number }).port}`,
    aedes,
    async [Symbol.asyncDispose]() {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await (aedes as unknown as { persistence: { destroy(): Promise<void> } }).persistence.destroy();
    },
  };
}

/**
 * Queues `count` QoS 2 messages for an offline persistent session, resumes it, completes every flow
 * (all PUBRECs, then all PUBCOMPs, each taken off the store before it goes), and resumes it again:
 * returns that last session once aedes finished its CONNECT (its queue sent).
 */
async function resumeAfterDrain({ url, aedes }: { url: string; aedes: Aedes }, count: number): Promise<RawClient> {
  const clientId = uniqueId("upstream");
  const topic = `upstream/${clientId}`;
  const first = await rawSession(url, { clientId, clean: false });
  first.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic, qos: 2 }] });
  await first.next("suback");
  await first.disconnect();
  const pub = await rawSession(url);
  for (let i = 1; i <= count; i++) {
    pub.send({ cmd: "publish", topic, payload: `m${i}`, qos: 2, messageId: i });
    await pub.next("pubrec");
    pub.send({ cmd: "pubrel", messageId: i });
    await pub.next("pubcomp");
  }
  await pub.disconnect();

  const again = await rawSession(url, { clientId, clean: false });
  const ids: number[] = [];
  for (let i = 0; i < count; i++) ids.push((await again.next("publish")).messageId!);
  for (const id of ids) again.send({ cmd: "pubrec", messageId: id });
  for (let i = 0; i < count; i++) await again.next("pubrel");
  const acked = reports.acked(aedes, clientId, count);
  for (const id of ids) again.send({ cmd: "pubcomp", messageId: id });
  await acked;
  await again.disconnect();

  const ready = reports.ready(aedes, clientId);
  const resumed = await rawSession(url, { clientId, clean: false });
  await ready;
  return resumed;
}

test("[MQTT-4.3.3-1] upstream: bare aedes on aedes-persistence sends the last completed QoS 2 message again after a drained queue", async () => {
  await using broker = await bareAedes();
  await using resumed = await resumeAfterDrain(broker, 3);
  const resent = await resumed.next("publish");
  expect([resent.payload.toString(), resent.qos]).toEqual(["m3", 2]);
  await resumed.nothing("publish");
});

test("[MQTT-4.3.3-1] bare aedes on the SQLite store sends nothing again after a drained queue", async () => {
  await using broker = await bareAedes(new SqlitePersistence({ file: dir.join("drain.sqlite") }));
  await using resumed = await resumeAfterDrain(broker, 3);
  await resumed.nothing("publish");
});
