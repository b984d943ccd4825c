/** Identities (the type lives in protocol.ts: it crosses threads). */
export type { Identity } from "../protocol";

/** The role MQTT clients get when `auth.mqtt.anonymous` lets them in without credentials. */
export const ANONYMOUS_ROLE = "anonymous";
