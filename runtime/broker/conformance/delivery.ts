/** [MQTT-3.8.4-6] delivery at no more than the QoS granted, on aedes' authorizeForward hook. */
import type { Aedes, Client } from "aedes";
import { topicMatches } from "../../protocol";

/** What aedes keeps on a client (not in its typings): its subscriptions by filter, with the QoS granted. */
interface ClientSubscriptions {
  subscriptions?: Record<string, { qos: number }>;
}

/**
 * aedes caps the QoS only by a subscription to the topic itself (so one to `a/+` at QoS 1 got QoS 2
 * messages), and not at all for what it queued while the client was offline. The packet is this
 * delivery's own copy (aedes writes it as is when resending a session's queue), so it is capped in
 * place. With overlapping subscriptions the cap is the highest QoS among them; aedes still delivers
 * one copy, at the QoS of whichever subscription it matched first, so [MQTT-3.3.5-1] (the highest) is
 * not guaranteed there.
 */
export function capForwardedQoS(aedes: Aedes): void {
  const authorizeForward = aedes.authorizeForward;
  aedes.authorizeForward = function (client, packet) {
    const forwarded = authorizeForward.call(this, client, packet);
    if (!forwarded || forwarded.qos === 0) return forwarded;
    const granted = grantedQoS(client, forwarded.topic);
    if (granted >= 0 && granted < forwarded.qos) forwarded.qos = granted as 0 | 1 | 2;
    return forwarded;
  };
}

/** The highest QoS granted to the client's subscriptions that match the topic; -1 if none does. */
function grantedQoS(client: Client, topic: string): number {
  const subscriptions = (client as unknown as ClientSubscriptions).subscriptions;
  let max = -1;
  for (const filter in subscriptions) {
    const qos = subscriptions[filter]!.qos;
    if (qos > max && topicMatches(filter, topic)) max = qos;
  }
  return max;
}
