/** A platform in this process for the in-process benchmarks: ports chosen by the OS, quiet logs. */
import { loadConfig } from "../../config/load";
import type { UserConfig } from "../../config/index";
import { createLogger } from "../../runtime/log";
import { startPlatform, type Platform } from "../../runtime/platform";
import { registerSdkModule } from "../../runtime/sdk/module";

export async function startInProcess(pluginsDir: string, dataDir: string, overrides: UserConfig = {}): Promise<Platform> {
  registerSdkModule();
  const { config } = await loadConfig({
    overrides: {
      ...overrides,
      gateway: { port: 0 },
      broker: { port: 0 },
      plugins: { dir: pluginsDir, watch: false },
      data: { dir: dataDir },
      log: { level: "warn" },
    },
  });
  return startPlatform(config, createLogger({ level: "warn" }));
}
