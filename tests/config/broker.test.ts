/** The broker section of the config: every field filled (none optional but `tls`), and a bad value named. */
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../config/load";
import type { Config } from "../../config/schema";
import { PlinthError } from "../../runtime/errors";

async function load(broker: Partial<Config["broker"]>): Promise<Config["broker"]> {
  const cwd = mkdtempSync(join(tmpdir(), "plinth-config-broker-"));
  try {
    return (await loadConfig({ cwd, overrides: { broker } })).config.broker;
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
}

test("the broker's limits and intervals are filled with their defaults", async () => {
  const broker = await load({});
  expect(broker).toMatchObject({ maxPacketBytes: 1024 * 1024, maxQueuedBytesPerClient: 1024 * 1024, maxConnections: 0, sysIntervalMs: 10_000, maxQueuedPerClient: 1000 });
  expect(broker.tls).toBeUndefined();
});

test.each([
  ["maxQueuedBytesPerClient", -1],
  ["maxPacketBytes", 10],
  ["maxConnections", 1.5],
  ["sysIntervalMs", "often"],
] as const)("an invalid broker.%s is named", async (field, value) => {
  const err = await load({ [field]: value } as Partial<Config["broker"]>).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PlinthError);
  expect((err as PlinthError).code).toBe("PLT_CONFIG_INVALID");
  expect((err as PlinthError).message).toContain(`broker.${field}`);
});
