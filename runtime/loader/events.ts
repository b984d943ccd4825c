/**
 * Events between services and the broker: a service's emitted events become
 * CloudEvents in its own namespace; MQTT messages become CloudEvents for the
 * plugins that subscribed.
 */
import type { Bus } from "../broker/bus";
import type { Logger } from "../log";
import type { LogGeneration } from "../storage/generation";
import { Topics, isValidEventType, toEnvelope, type CloudEvent, type CommittedEvent } from "../protocol";
import { nestsDeeperThan } from "../json-depth";
import { MAX_DATA_DEPTH } from "../worker/channel";

/**
 * Publishes a service's committed events (QoS 1, in order); the topic and source come from the
 * host's name for the service, never from the worker. `done` runs once the broker has taken them
 * all (with the first error, if any). Callbacks, not promises: this runs for every commit that emitted.
 */
export function publishEvents(bus: Bus, service: string, events: CommittedEvent[], generation: LogGeneration | null, log: Logger, done: (err?: Error) => void): void {
  let left = events.length + 1;
  let failed: Error | undefined;
  const settled = (err?: Error | null) => {
    if (err) failed ??= err;
    if (--left === 0) done(failed);
  };
  for (const e of events) {
    if (!isValidEventType(e.type)) {
      log.error("event dropped: invalid type", { service, type: e.type });
      settled();
      continue;
    }
    bus.send(Topics.event(service, e.type), JSON.stringify(toEnvelope(service, e, generation)), settled);
  }
  settled();
}

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
