/**
 * Events nobody wants are taken as sent in the plugin's worker, without a message to the broker's
 * thread, once the broker said so for their type; a subscription taken since moves the broker's
 * clock, and the next such event is published to it. Through the whole platform: a real MQTT client
 * subscribing between commits, live and as an offline persistent session.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { join } from "node:path";
import { boot, type Booted } from "../../helpers/boot";
import { connectMqtt, eventually } from "../../helpers/mqtt";

let p: Booted;
beforeAll(async () => {
  p = await boot({ fixtures: ["emitter"] });
});
afterAll(async () => {
  await p?.stop();
});

const emit = async (type: string, n: number) => expect((await p.req("/api/emitter", { json: { type, data: { n } } })).status).toBe(200);

/** Resolves once every committed event of the emitter is marked sent (the broker's answers are written). */
async function allSent(): Promise<void> {
  await eventually(() => {
    const db = new Database(join(p.dataDir, "emitter.sqlite"), { readonly: true });
    try {
      const { unsent } = db.query("SELECT count(*) AS unsent FROM _plinth_outbox_state WHERE NOT sent").get() as { unsent: number };
      return unsent === 0;
    } finally {
      db.close();
    }
  });
}

test("a client that subscribes after a type was quiet gets every event committed after its SUBACK", async () => {
  for (let round = 0; round < 5; round++) {
    const type = `quiet${round}`;
    for (let i = 0; i < 3; i++) await emit(type, i);
    await allSent();
    await emit(type, 3); // taken as sent in the worker, if the broker's answer came
    const client = await connectMqtt(p.mqttUrl);
    try {
      await client.subscribe(`events/emitter/${type}`, 1);
      await emit(type, 4);
      const m = await client.next((m) => m.topic === `events/emitter/${type}`);
      expect(m.json().data).toEqual({ n: 4 });
    } finally {
      await client.end();
    }
  }
});

test("an offline persistent session's subscription, taken after its type was quiet, gets what commits while it is away", async () => {
  for (let i = 0; i < 3; i++) await emit("kept", i);
  await allSent();
  const clientId = "unwanted-events-away";
  const away = await connectMqtt(p.mqttUrl, { clientId, clean: false });
  await away.subscribe("events/emitter/kept", 1);
  await away.end();
  await emit("kept", 10);
  const back = await connectMqtt(p.mqttUrl, { clientId, clean: false });
  try {
    expect((await back.next((m) => m.topic === "events/emitter/kept")).json().data).toEqual({ n: 10 });
  } finally {
    await back.end();
  }
});
