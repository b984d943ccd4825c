/** Names of the built-in services, for the loader (which must not import their code). */
export const builtinServiceNames = ["platform", "auth"] as const;
/** The built-in service that may call the node's reserved `$node.*` actions (its routes are for operators). */
export const nodeServiceName: (typeof builtinServiceNames)[number] = "platform";
