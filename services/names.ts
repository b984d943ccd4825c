/** Names of the built-in services, for the loader (which must not import their code). */
export const builtinServiceNames = ["platform", "auth"] as const;
