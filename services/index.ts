/**
 * Built-in services, bundled into the binary and loaded exactly like user
 * plugins (each in its own worker, with the same SDK).
 */
import type { PluginDefinition } from "../runtime/sdk/define";
import type { builtinServiceNames } from "./names";

export const builtinServices: Record<(typeof builtinServiceNames)[number], () => Promise<{ default: PluginDefinition }>> &
  Record<string, (() => Promise<{ default: PluginDefinition }>) | undefined> = {
  platform: () => import("./platform/index"),
  auth: () => import("./auth/index"),
};
