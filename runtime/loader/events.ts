/**
 * Events between services and the broker: a service's emitted events become
 * CloudEvents in its own namespace; MQTT messages become CloudEvents for the
 * plugins that subscribed.
 */
import type { Bus } from "../broker/bus";
import type { Logger } from "../log";
import { Topics, eventSource, eventType, isValidEventType, type CloudEvent, type EmitRequest } from "../protocol";

/** Publishes a service's events; the topic and source come from the host's name for it, never from the worker. */
export function publishEvents(bus: Bus, service: string, events: EmitRequest[], log: Logger): void {
  for (const e of events) {
    if (!isValidEventType(e.type)) {
      log.error("event dropped: invalid type", { service, type: e.type });
      continue;
    }
    const envelope: CloudEvent = {
      specversion: "1.0",
      id: e.id,
      source: eventSource(service),
      type: eventType(service, e.type),
      time: e.time,
      datacontenttype: "application/json",
      data: e.data,
    };
    bus.publish(Topics.event(service, e.type), JSON.stringify(envelope)).catch((err: Error) =>
      log.error("event publish failed", { service, type: e.type, error: err.message }),
    );
  }
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
