/**
 * The plugin author's API, imported as `import { definePlugin, t } from "plinth"`.
 * This list is the whole public surface: anything not exported here is internal.
 * Runs inside workers, so it imports only errors, protocol and TypeBox.
 */
export { definePlugin, route, action } from "./define";
export type {
  PluginDefinition,
  Context,
  RouteContext,
  ActionContext,
  EventContext,
  RouteSpec,
  ActionSpec,
  EventSpec,
  CallOptions,
} from "./define";
export { Type as t } from "@sinclair/typebox";
export type { Static, TSchema } from "@sinclair/typebox";
export { PlinthError, ErrorCode } from "../errors";
export type { WireError } from "../errors";
export type { CloudEvent } from "../protocol";
export type { Identity } from "../protocol";
export type { Logger } from "../log";
export { defineConfig } from "../../config/index";
export type { UserConfig } from "../../config/index";
