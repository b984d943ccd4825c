/**
 * kill -9 under load: every order the gateway acknowledged has its event
 * delivered to the notifications plugin exactly once in effect after a
 * restart, and at least once to an external MQTT.js subscriber on a persistent
 * session (QoS 1, clean: false) that reconnects after the restart; none missing.
 */
import { expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { startBinary } from "../helpers/binary";
import { connectMqtt, eventually } from "../helpers/mqtt";
import { writePlugins } from "../helpers/plugins";
import { tempDir } from "../helpers/tmp";

const TOTAL = 2_500;
const KILL_AFTER = 1_000;
const CONCURRENCY = 32;

test(`kill -9 during ${TOTAL} order requests loses no acknowledged order's event`, async () => {
  using dir = tempDir("plinth-e2e-crash");
  writePlugins(dir.join("plugins"), { examples: ["orders", "inventory", "notifications"] });
  const app = await startBinary(dir.path);
  // The outside subscriber: a persistent session, QoS 1. It sees the first half live; the broker keeps
  // the rest for it (in SQLite) across the kill.
  const session = { clientId: "crash-watcher", clean: false } as const;
  const heard = new Set<string>();
  const watcher = await connectMqtt(app.mqttUrl, session);
  await watcher.subscribe("events/orders/#", 1);
  watcher.client.on("message", (_topic, payload) => heard.add((JSON.parse(payload.toString()) as { id: string }).id));

  const acked: number[] = [];
  let next = 0;
  let killed = false;
  const worker = async () => {
    while (next < TOTAL) {
      next++;
      try {
        const res = await fetch(`${app.url}/api/orders`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ sku: "apple", qty: 1 }),
        });
        if (res.status === 201) acked.push(((await res.json()) as { id: number }).id);
      } catch {
        // connection refused or reset once the process is gone
      }
      if (!killed && acked.length >= KILL_AFTER) {
        killed = true;
        app.proc.kill("SIGKILL");
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  expect(await app.proc.exited).not.toBe(0);
  expect(killed).toBe(true);
  expect(acked.length).toBeGreaterThanOrEqual(KILL_AFTER);

  await watcher.end();
  await using again = await startBinary(dir.path);
  const back = await connectMqtt(again.mqttUrl, session);
  expect(back.client.connected).toBe(true);
  // What came before this line (queued messages can arrive with CONNACK) is in back.received.
  for (const m of back.received) heard.add(m.json<{ id: string }>().id);
  back.client.on("message", (_topic, payload) => heard.add((JSON.parse(payload.toString()) as { id: string }).id));
  const orders = new Database(dir.join("data/orders.sqlite"), { readonly: true });
  const notifications = new Database(dir.join("data/notifications.sqlite"), { readonly: true });
  try {
    // Each acknowledged order committed with its event: find those events' ids.
    const eventOf = orders.query("SELECT id FROM _plinth_outbox WHERE type = 'created' AND json_extract(data, '$.id') = ?");
    const expected = acked.map((id) => (eventOf.get(id) as { id: string } | null)?.id);
    expect(expected.filter((id) => id === undefined)).toEqual([]);

    const handled = notifications.query("SELECT COUNT(*) AS n FROM notifications WHERE event_id = ?");
    await eventually(() => expected.every((id) => (handled.get(id!) as { n: number }).n === 1), 20_000, 100);
    const counts = expected.map((id) => (handled.get(id!) as { n: number }).n);
    expect(counts.filter((n) => n !== 1)).toEqual([]);
    // At least once to the outside subscriber, across the kill: none missing.
    await eventually(() => expected.every((id) => heard.has(id!)), 20_000, 100);
    expect(expected.filter((id) => !heard.has(id!))).toEqual([]);
  } finally {
    await back.end();
    orders.close();
    notifications.close();
  }
  expect(await again.stop()).toBe(0);
}, 60_000);
