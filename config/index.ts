/** Public config API: `defineConfig` gives a config file its types; nothing else happens here. */
import type { Config } from "./schema";

export type { Config } from "./schema";

type DeepPartial<T> = { [K in keyof T]?: NonNullable<T[K]> extends Record<string, unknown> ? DeepPartial<NonNullable<T[K]>> : T[K] };

/** What a config file may write: every field optional (defaults fill the rest). */
export type UserConfig = DeepPartial<Config>;

export function defineConfig(config: UserConfig): UserConfig {
  return config;
}
