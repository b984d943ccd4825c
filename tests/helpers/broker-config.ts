/** A broker section as the config loader would make it (every default filled), for tests that start the broker alone. */
import { Value } from "@sinclair/typebox/value";
import { ConfigSchema, type Config } from "../../config/schema";

/** On a free port, MQTT over WebSocket off unless asked for. */
export function brokerConfig(overrides: Partial<Config["broker"]> = {}): Config["broker"] {
  return Value.Default(ConfigSchema.properties.broker, { port: 0, websocketPath: "", ...overrides }) as Config["broker"];
}
