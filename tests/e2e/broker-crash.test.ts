/**
 * kill -9 under MQTT load: outside publishers send QoS 1 and QoS 2 messages to the compiled binary as
 * fast as it acknowledges them, a persistent subscriber (clean session 0) is offline, and the process
 * is killed in the middle, right after an acknowledgement. After a restart, every message a publisher
 * got its PUBACK (QoS 1) or PUBCOMP (QoS 2) for reaches the subscriber: none acknowledged and lost.
 *
 * PLINTH_E2E_BINARY runs another build than dist/plinth.
 */
import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import mqtt from "mqtt";
import { BINARY, OPEN_AUTH, startBinary } from "../helpers/binary";
import { connectMqtt, eventually } from "../helpers/mqtt";
import { tempDir } from "../helpers/tmp";

const binary = process.env.PLINTH_E2E_BINARY ?? BINARY;
/** Acknowledgements (both QoS together) before the kill. */
const KILL_AFTER = 4_000;
/** Publishers per QoS, and the messages each keeps unacknowledged. */
const PUBLISHERS = 2;
const WINDOW = 100;
const SESSION = { clientId: "crash-offline", clean: false } as const;

test(`kill -9 after ${KILL_AFTER} acknowledged QoS 1 and QoS 2 publishes loses none of them for an offline persistent session`, async () => {
  using dir = tempDir("plinth-e2e-broker-crash");
  // Queues that hold every message: what is acknowledged must all be there, none dropped for room.
  writeFileSync(dir.join("platform.config.ts"), `export default { ${OPEN_AUTH}, broker: { maxQueuedPerClient: 1_000_000 } };\n`);
  const app = await startBinary(dir.path, [], binary);

  const subscriber = await connectMqtt(app.mqttUrl, SESSION);
  expect(await subscriber.subscribe("load/#", 2)).toEqual([2]);
  await subscriber.end(); // offline from now on: the broker stores everything for it

  const acked = new Set<string>();
  const sent = { 1: 0, 2: 0 };
  let killed = false;
  const publishers = await Promise.all(
    Array.from({ length: PUBLISHERS * 2 }, async (_, i) => {
      const qos = (i % 2) + 1 as 1 | 2;
      const client = await mqtt.connectAsync(app.mqttUrl, { clientId: `crash-pub-${i}`, reconnectPeriod: 0 });
      client.on("error", () => {});
      let n = 0;
      const next = () => {
        if (killed || !client.connected) return;
        const payload = `q${qos}-${i}-${n++}`;
        sent[qos]++;
        client.publish(`load/q${qos}/${i}`, payload, { qos }, (err) => {
          if (err) return;
          acked.add(payload);
          if (!killed && acked.size >= KILL_AFTER) {
            // Right after this acknowledgement, the broker gets no chance to finish anything else.
            killed = true;
            app.proc.kill("SIGKILL");
          }
          next();
        });
      };
      for (let k = 0; k < WINDOW; k++) next();
      return client;
    }),
  );
  expect(await app.proc.exited).not.toBe(0);
  expect(killed).toBe(true);
  await Promise.all(publishers.map((c) => c.endAsync(true).catch(() => {})));
  const acknowledged = [...acked];
  // Both kinds were acknowledged in numbers, and some messages were still on their way.
  expect(acknowledged.filter((p) => p.startsWith("q1-")).length).toBeGreaterThan(KILL_AFTER / 10);
  expect(acknowledged.filter((p) => p.startsWith("q2-")).length).toBeGreaterThan(KILL_AFTER / 10);
  expect(sent[1] + sent[2]).toBeGreaterThan(acknowledged.length);

  await using again = await startBinary(dir.path, [], binary);
  const back = await connectMqtt(again.mqttUrl, SESSION);
  try {
    expect(back.client.connected).toBe(true);
    const heard = new Set<string>();
    back.client.on("message", (_topic, payload) => heard.add(payload.toString()));
    for (const m of back.received) heard.add(m.payload.toString());
    await eventually(() => acknowledged.every((p) => heard.has(p)), 30_000, 100).catch(() => {});
    const missing = acknowledged.filter((p) => !heard.has(p));
    expect({ acknowledged: acknowledged.length, missing: missing.slice(0, 10), missingCount: missing.length }).toEqual({
      acknowledged: acknowledged.length,
      missing: [],
      missingCount: 0,
    });
  } finally {
    await back.end();
  }
  expect(await again.stop()).toBe(0);
}, 90_000);
