/** Hot reload in the compiled binary: replace a plugin under load with no failed request, remove one. */
import { expect, test } from "bun:test";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { startBinary } from "../helpers/binary";
import { eventually } from "../helpers/mqtt";
import { writePlugins } from "../helpers/plugins";
import { tempDir } from "../helpers/tmp";

test("replacing a plugin's file under load fails no request; removing a plugin 404s its routes", async () => {
  using dir = tempDir("plinth-e2e-reload");
  writePlugins(dir.join("plugins"), { examples: ["orders", "inventory", "notifications"] });
  await using app = await startBinary(dir.path);

  const statuses = new Map<number, number>();
  let running = true;
  const loop = async () => {
    while (running) {
      const res = await fetch(`${app.url}/api/inventory/apple`);
      await res.arrayBuffer();
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    }
  };
  const loops = Array.from({ length: 8 }, loop);
  const answered = () => statuses.get(200) ?? 0;
  await eventually(() => answered() >= 50); // the load is on before the change...

  const file = dir.join("plugins/inventory/index.ts");
  writeFileSync(file, readFileSync(file, "utf8").replace('version: "1.0.0"', 'version: "1.1.0"'));
  await app.waitForLog(/service replaced service=inventory version=1\.1\.0/);
  await app.waitForLog(/service retired service=inventory/);
  const retired = answered();
  await eventually(() => answered() >= retired + 50); // ...and goes on after it
  running = false;
  await Promise.all(loops);
  expect([...statuses.keys()]).toEqual([200]);
  expect(statuses.get(200)!).toBeGreaterThan(100);

  // Orders still reach the new inventory worker through ctx.call.
  const order = await fetch(`${app.url}/api/orders`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ sku: "apple", qty: 1 }),
  });
  expect(order.status).toBe(201);

  rmSync(dir.join("plugins/notifications"), { recursive: true });
  await eventually(async () => (await fetch(`${app.url}/api/notifications`)).status === 404);
  expect(await app.stop()).toBe(0);
});
