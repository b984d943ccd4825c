/**
 * MQTT messages become CloudEvents for the plugins that subscribed (a service's
 * own events are published from its worker: runtime/bus/event-port.ts).
 */
import type { CloudEvent } from "../protocol";
import { nestsDeeperThan } from "../json-depth";
import { MAX_DATA_DEPTH } from "../worker/channel";

/** Events from services are CloudEvents already; other MQTT messages are wrapped in one (type `mqtt.message`). */
export function toCloudEvent(topic: string, payload: Buffer): CloudEvent {
  const text = payload.toString("utf8");
  let data: unknown = text;
  // A payload nested deeper than event data may be stays text, like one that is not JSON: parsed, it
  // could not be handed to a plugin, and refusing it would cost the main thread (JSON.stringify takes
  // over a second to overflow on 100,000 levels).
  if (!nestsDeeperThan(text, MAX_DATA_DEPTH)) {
    try {
      data = JSON.parse(text);
    } catch {}
  }
  if (typeof data === "object" && data !== null && (data as { specversion?: unknown }).specversion === "1.0") {
    return data as CloudEvent;
  }
  return {
    specversion: "1.0",
    id: Bun.randomUUIDv7(),
    source: "mqtt",
    type: "mqtt.message",
    time: new Date().toISOString(),
    datacontenttype: "application/json",
    subject: topic,
    data,
  };
}
