/**
 * The compiled binary, copied alone into an empty folder with only a plugins/
 * folder beside it and run from there: HTTP through the gateway, events to MQTT.js over
 * TCP and WebSocket, a broken plugin beside good ones, clean shutdown.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { copyFileSync } from "node:fs";
import { BINARY, ensureBinary, startBinary, type Running } from "../helpers/binary";
import { connectMqtt, eventually } from "../helpers/mqtt";
import { writePlugins } from "../helpers/plugins";
import { tempDir, type TempDir } from "../helpers/tmp";

/** The binary copied alone into a new folder with the example plugins and a broken one beside it, started there. */
async function startAlone(): Promise<{ dir: TempDir; app: Running }> {
  const dir = tempDir("plinth-e2e");
  writePlugins(dir.join("plugins"), {
    examples: ["orders", "inventory", "notifications"],
    files: { "broken.ts": `import { definePlugin } from "plinth";\nexport default definePlugin({ name: "broken", version: "1.0.0" ;\n` },
  });
  ensureBinary();
  copyFileSync(BINARY, dir.join("plinth"));
  return { dir, app: await startBinary(dir.path, [], dir.join("plinth")) };
}

// Shared by the tests that leave it running; the SIGTERM test stops one of its own.
let dir: TempDir;
let app: Running;

beforeAll(async () => {
  ({ dir, app } = await startAlone());
});

afterAll(async () => {
  await app?.stop("SIGKILL");
  dir?.[Symbol.dispose]();
});

describe("dist/plinth run", () => {
  test("an order flows: HTTP → inventory → SQLite → MQTT (TCP and WebSocket) → notifications", async () => {
    await using tcp = await connectMqtt(app.mqttUrl);
    await using ws = await connectMqtt(app.wsUrl);
    await tcp.subscribe("events/#");
    await ws.subscribe("events/orders/#");

    const res = await fetch(`${app.url}/api/orders`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ sku: "apple", qty: 2 }),
    });
    expect(res.status).toBe(201);
    const order = (await res.json()) as { id: number };

    const viaTcp = (await tcp.next((m) => m.topic === "events/orders/created" && m.json().data.id === order.id)).json();
    expect(viaTcp).toMatchObject({ specversion: "1.0", type: "orders.created", source: "plinth/orders", data: { id: order.id, sku: "apple", qty: 2 } });
    expect((await ws.next((m) => m.topic === "events/orders/created")).json().id).toBe(viaTcp.id);

    const notes = await eventually(async () => {
      const list = (await (await fetch(`${app.url}/api/notifications`)).json()) as Array<{ event_id: string }>;
      return list.find((n) => n.event_id === viaTcp.id);
    });
    expect(notes.event_id).toBe(viaTcp.id);
  });

  test("the broken plugin is reported with its file and reason; the rest serve", async () => {
    expect(app.log()).toMatch(/plugin failed to load plugin=plugins\/broken\.ts code=PLT_PLUGIN_LOAD/);
    const health = (await (await fetch(`${app.url}/health`)).json()) as {
      status: string;
      services: Record<string, { state: string }>;
      failed: Array<{ origin: string; error: { code: string } }>;
    };
    expect(health.status).toBe("degraded");
    expect(health.failed).toEqual([{ origin: "plugins/broken.ts", error: expect.objectContaining({ code: "PLT_PLUGIN_LOAD" }) }]);
    expect(Object.keys(health.services).sort()).toEqual(["auth", "inventory", "notifications", "orders", "platform"]);
  });

  test("SIGTERM drains, closes the databases and exits 0; the data is on disk", async () => {
    const own = await startAlone();
    try {
      const res = await fetch(`${own.app.url}/api/orders`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ sku: "pear", qty: 3 }),
      });
      expect(res.status).toBe(201);
      expect(await own.app.stop("SIGTERM")).toBe(0);
      expect(own.app.log()).toContain("platform stopped");

      const db = new Database(own.dir.join("data/orders.sqlite"), { readonly: true });
      try {
        expect(db.query("SELECT sku, qty FROM orders ORDER BY id").all()).toEqual([{ sku: "pear", qty: 3 }]);
      } finally {
        db.close();
      }
    } finally {
      await own.app.stop("SIGKILL");
      own.dir[Symbol.dispose]();
    }
  });
});
