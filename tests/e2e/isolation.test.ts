/** A sibling plugin crash-looping (compiled binary) costs a healthy service no request. */
import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { OPEN_AUTH, runBinary, startBinary } from "../helpers/binary";
import { writePlugins } from "../helpers/plugins";
import { tempDir } from "../helpers/tmp";

const doomed = `import { definePlugin } from "plinth";
// Dies 100 ms after every start: the supervisor restarts it with backoff until it gives up.
setTimeout(() => { throw new Error("doomed plugin crashed"); }, 100);
export default definePlugin({ name: "doomed", version: "1.0.0", routes: { "GET /": () => ({ alive: true }) } });
`;

test("a crash-looping sibling causes zero failed requests on a healthy service", async () => {
  using dir = tempDir("plinth-e2e-isolation");
  writePlugins(dir.join("plugins"), { examples: ["inventory"], files: { "doomed.ts": doomed } });
  writeFileSync(dir.join("platform.config.ts"), `export default { ${OPEN_AUTH}, workers: { restartDelayMs: 20, maxRestarts: 6 } };\n`);
  await using app = await startBinary(dir.path);

  const statuses = new Map<number, number>();
  const end = performance.now() + 2_000;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (performance.now() < end) {
        const res = await fetch(`${app.url}/api/inventory/apple`);
        await res.arrayBuffer();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      }
    }),
  );
  expect([...statuses.keys()]).toEqual([200]);
  expect(statuses.get(200)!).toBeGreaterThan(500);
  // the sibling really was crash-looping the whole time
  expect((app.log().match(/service crashed, restarting/g) ?? []).length).toBeGreaterThanOrEqual(3);
  const health = (await (await fetch(`${app.url}/health`)).json()) as { services: Record<string, { state: string }> };
  expect(health.services.inventory?.state).toBe("ready");

  const shown = await runBinary(dir.path, ["status", "--url", app.url, "--key", app.adminKey]);
  expect(shown.code).toBe(0);
  expect(shown.stdout).toMatch(/^SERVICE\s+VERSION\s+STATE\s+BREAKER\s+RESTARTS\s+FROM$/m);
  expect(shown.stdout).toMatch(/^inventory\s+1\.0\.0\s+ready\s+closed\s+0\s+plugins\/inventory\/index\.ts$/m);
  expect(shown.stdout).toMatch(/^doomed\s+1\.0\.0\s+(failed|restarting|ready)\s+closed\s+\d+/m);
  expect((await runBinary(dir.path, ["status", "--url", "http://127.0.0.1:1"])).code).toBe(1);
});
