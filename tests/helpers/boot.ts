/**
 * Boots a real platform in this process on free ports (port 0), with its own
 * plugins and data folders, and returns helpers to talk to it.
 */
import { loadConfig } from "../../config/load";
import type { UserConfig } from "../../config/index";
import { createLogger } from "../../runtime/log";
import type { Broker } from "../../runtime/broker/broker";
import { startPlatform, type Platform, type PlatformOptions } from "../../runtime/platform";
import { registerSdkModule } from "../../runtime/sdk/module";
import { writePlugins, type PluginSet } from "./plugins";
import { createKey } from "./keys";
import { tempDir, type TempDir } from "./tmp";

/** Breaker settings that never open: for tests that poll a service through its restarts (503s). */
export const NO_BREAKER = { failureThreshold: 1_000_000, minimumCalls: 1_000_000 } as const;

export interface Booted extends AsyncDisposable {
  platform: Platform;
  /** http://127.0.0.1:<port> */
  url: string;
  mqttUrl: string;
  wsUrl: string;
  dataDir: string;
  pluginsDir: string;
  /** An API key with role "admin" (the operator's). */
  adminKey: string;
  /**
   * fetch against the gateway as the admin (unless the request brings its own credentials or
   * says `anonymous`); JSON-encodes `json` when given.
   */
  req(path: string, init?: RequestInit & { json?: unknown; anonymous?: boolean }): Promise<Response>;
  stop(): Promise<void>;
}

/** Boot options for tests that look inside aedes: the broker runs on the test's own thread (see `inside`). */
export const ON_MAIN_THREAD: PlatformOptions = { brokerThread: false };

/** The broker of a platform booted with ON_MAIN_THREAD. */
export function inside(p: Booted): Broker {
  const broker = p.platform.broker!.local;
  if (!broker) throw new Error("boot with ON_MAIN_THREAD to look inside the broker");
  return broker;
}

/** Boots so far: each gets an admin key of its own name (a test may boot twice on one data folder). */
let booted = 0;

export async function boot(plugins: PluginSet, overrides: UserConfig = {}, options: PlatformOptions = {}): Promise<Booted> {
  registerSdkModule();
  const dir = tempDir("plinth-boot");
  try {
    return await start(dir, plugins, overrides, options);
  } catch (err) {
    dir[Symbol.dispose](); // a start that failed leaves nothing behind
    throw err;
  }
}

async function start(dir: TempDir, plugins: PluginSet, overrides: UserConfig, options: PlatformOptions): Promise<Booted> {
  const pluginsDir = writePlugins(dir.join("plugins"), plugins);
  const { config } = await loadConfig({
    cwd: dir.path,
    overrides: {
      ...overrides,
      // Open unless the test says otherwise: most tests are not about authentication.
      auth: { defaultPolicy: "public", ...overrides.auth, mqtt: { anonymous: true, ...overrides.auth?.mqtt } },
      gateway: { port: 0, ...overrides.gateway },
      broker: { port: 0, ...overrides.broker },
      plugins: { dir: pluginsDir, ...overrides.plugins },
      data: { ...overrides.data, dir: overrides.data?.dir ?? dir.join("data") },
      log: { level: "silent", ...overrides.log },
    },
  });
  const platform = await startPlatform(config, createLogger({ level: config.log.level }), options);
  const url = platform.gateway.url;
  const adminKey = createKey(config.data.dir, ["admin"], `test-admin-${++booted}`);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await platform.stop();
    dir[Symbol.dispose]();
  };
  return {
    platform,
    url,
    // In a cluster, the cluster's broker (there is no embedded one).
    mqttUrl: platform.broker ? `mqtt://127.0.0.1:${platform.broker.port}` : config.cluster!.url,
    wsUrl: `ws://127.0.0.1:${platform.broker?.websocketPort ?? platform.gateway.port}${config.broker.websocketPath}`,
    dataDir: config.data.dir,
    pluginsDir: config.plugins.dir,
    adminKey,
    req(path, init = {}) {
      const { json, anonymous, ...rest } = init;
      const headers = new Headers(rest.headers);
      if (!anonymous && !headers.has("authorization") && !headers.has("x-api-key")) headers.set("x-api-key", adminKey);
      if (json === undefined) return fetch(url + path, { ...rest, headers });
      if (!headers.has("content-type")) headers.set("content-type", "application/json");
      return fetch(url + path, { method: "POST", ...rest, headers, body: JSON.stringify(json) });
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
