/** The events and dead-letter commands of the compiled binary, against a running platform. */
import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { BINARY, OPEN_AUTH, runBinary, startBinary } from "../helpers/binary";
import { eventually } from "../helpers/mqtt";
import { writePlugins } from "../helpers/plugins";
import { tempDir } from "../helpers/tmp";

const picky = `import { definePlugin, PlinthError } from "plinth";
export default definePlugin({
  name: "picky", version: "1.0.0",
  subscribe: { "events/orders/created": () => { throw new PlinthError("PICKY_REFUSED", "never likes an order"); } },
});`;

test("events tail prints events live; deadletters lists and re-drives", async () => {
  using dir = tempDir("plinth-e2e-events");
  writePlugins(dir.join("plugins"), { examples: ["orders", "inventory"], files: { "picky.ts": picky } });
  writeFileSync(dir.join("platform.config.ts"), `export default { ${OPEN_AUTH}, events: { maxAttempts: 2, retryDelayMs: 10 } };\n`);
  await using app = await startBinary(dir.path);

  const tail = Bun.spawn([BINARY, "events", "tail", "events/orders/#", "--url", app.mqttUrl], { cwd: dir.path, stdout: "pipe", stderr: "pipe" });
  let out = "";
  let err = "";
  void (async () => {
    for await (const c of tail.stdout) out += new TextDecoder().decode(c);
  })();
  void (async () => {
    for await (const c of tail.stderr) err += new TextDecoder().decode(c);
  })();
  try {
    await eventually(() => err.includes("tailing events/orders/#"));
    const res = await fetch(`${app.url}/api/orders`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ sku: "apple", qty: 1 }),
    });
    expect(res.status).toBe(201);
    const line = await eventually(() => out.split("\n").find((l) => l.includes("events/orders/created")));
    expect(line).toMatch(/^\S+Z {2}events\/orders\/created {2}orders\.created {2}\S+ {2}\{"id":1,"sku":"apple","qty":1,/);
  } finally {
    tail.kill("SIGINT");
  }
  expect(await tail.exited).toBe(0);

  const listed = await eventually(async () => {
    const r = await runBinary(dir.path, ["deadletters", "picky", "--url", app.url, "--key", app.adminKey]);
    return r.stdout.includes("orders.created") ? r : null;
  });
  expect(listed.code).toBe(0);
  expect(listed.stdout).toMatch(/^1 {2}\S+ {2}events\/orders\/created {2}orders\.created {2}\S+ {2}attempts=2 {2}never likes an order/);

  const again = await runBinary(dir.path, ["deadletters", "picky", "--redrive", "1", "--url", app.url, "--key", app.adminKey]);
  expect(again.code).toBe(1);
  expect(again.stderr).toContain("PICKY_REFUSED: never likes an order");
  expect((await runBinary(dir.path, ["deadletters", "ghost", "--url", app.url, "--key", app.adminKey])).stderr).toContain("PLT_SERVICE_NOT_FOUND");
});
