/**
 * Events between services and the broker: a service's emitted events become
 * CloudEvents in its own namespace; MQTT messages become CloudEvents for the
 * plugins that subscribed.
 */
import type { Bus } from "../broker/bus";
import type { Logger } from "../log";
import { Topics, isValidEventType, toEnvelope, type CloudEvent, type CommittedEvent } from "../protocol";

/**
 * Publishes a service's committed events (QoS 1, in order); the topic and source come from the
 * host's name for the service, never from the worker. Resolves once the broker has taken them all.
 */
export async function publishEvents(bus: Bus, service: string, events: CommittedEvent[], log: Logger): Promise<void> {
  const published: Promise<void>[] = [];
  for (const e of events) {
    if (!isValidEventType(e.type)) {
      log.error("event dropped: invalid type", { service, type: e.type });
      continue;
    }
    published.push(bus.publish(Topics.event(service, e.type), JSON.stringify(toEnvelope(service, e))));
  }
  await Promise.all(published);
}

/** Events from services are CloudEvents already; other MQTT messages are wrapped in one (type `mqtt.message`). */
export function toCloudEvent(topic: string, payload: Buffer): CloudEvent {
  const text = payload.toString("utf8");
  let data: unknown = text;
  try {
    data = JSON.parse(text);
  } catch {}
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
