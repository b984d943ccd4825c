/**
 * A plugin whose action keeps failing: the breaker opens (503 at once, the
 * plugin is not called), then after the reset time a probe closes it.
 * Configured through platform.config.ts importing defineConfig from "plinth".
 */
import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { OPEN_AUTH, startBinary } from "../helpers/binary";
import { eventually } from "../helpers/eventually";
import { writePlugins } from "../helpers/plugins";
import { tempDir } from "../helpers/tmp";

test("breaker opens on repeated failures and closes after recovery (compiled binary)", async () => {
  using dir = tempDir("plinth-e2e-breaker");
  writePlugins(dir.join("plugins"), { fixtures: ["flaky", "caller"] });
  writeFileSync(
    dir.join("platform.config.ts"),
    `import { defineConfig } from "plinth";
export default defineConfig({
  ${OPEN_AUTH},
  breaker: { failureThreshold: 2, resetTimeoutMs: 400 },
  plugins: { config: { flaky: { failFirst: 2 } } },
});
`,
  );
  await using app = await startBinary(dir.path);
  const call = async () =>
    (await fetch(`${app.url}/api/caller`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ target: "flaky.work" }),
    }).then((r) => r.json())) as { ok: boolean; code?: string; value?: unknown };

  expect(await call()).toMatchObject({ ok: false, code: "PLT_HANDLER_ERROR" });
  expect(await call()).toMatchObject({ ok: false, code: "PLT_HANDLER_ERROR" });
  expect(await call()).toMatchObject({ ok: false, code: "PLT_BREAKER_OPEN" });
  const breakers = (await (await fetch(`${app.url}/api/platform/breakers`, { headers: { "x-api-key": app.adminKey } })).json()) as Record<string, { state: string }>;
  expect(breakers.flaky?.state).toBe("open");

  // Refused at once until the reset time has passed; then the first call through is the probe (flaky's call 3).
  const opened = performance.now();
  const probe = await eventually(async () => {
    const answer = await call();
    return answer.code === "PLT_BREAKER_OPEN" ? null : answer;
  }, 5_000, 20);
  expect(performance.now() - opened).toBeGreaterThanOrEqual(300);
  expect(probe).toEqual({ ok: true, value: { ok: true, calls: 3 } });
  const after = (await (await fetch(`${app.url}/api/platform/breakers`, { headers: { "x-api-key": app.adminKey } })).json()) as Record<string, { state: string }>;
  expect(after.flaky?.state).toBe("closed");
  await app.waitForLog(/circuit breaker service=flaky state=closed/);
});
