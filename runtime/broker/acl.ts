/**
 * Topic permissions for MQTT clients (aedes hooks). Outside clients may not
 * publish into the platform's own namespaces: `events/#` belongs to services
 * (each to its own `events/<service>/#`, enforced where services emit),
 * `$platform/#` and `$SYS/#` to the runtime. Authentication and per-role ACLs
 * plug in here later.
 */
import type { AedesOptions } from "aedes";
import type { Logger } from "../log";
import { Topics } from "../protocol";

const RESERVED = [Topics.eventsRoot, Topics.platformRoot, "$SYS"];

/** The root itself counts too: the filter `events/#` matches the topic `events` [MQTT-4.7.1-2]. */
export function isReservedTopic(topic: string): boolean {
  return RESERVED.some((root) => topic === root || topic.startsWith(`${root}/`));
}

export function aclHooks(log: Logger): Pick<AedesOptions, "authorizePublish"> {
  return {
    authorizePublish(client, packet, callback) {
      // client is null for the runtime's own in-process publishes.
      if (client && isReservedTopic(packet.topic)) {
        log.warn("publish denied: reserved topic", { client: client.id, topic: packet.topic });
        return callback(new Error(`publishing to ${packet.topic} is not allowed`));
      }
      callback(null);
    },
  };
}
