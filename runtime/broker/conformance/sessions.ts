/**
 * [MQTT-3.2.2-2] [MQTT-3.1.2-4] A session exists from its first CONNECT with clean session 0 until a
 * CONNECT with clean session 1, subscriptions or not. aedes takes "session present" from the stored
 * subscriptions alone (lib/handlers/connect.js: `sessionPresent = !!arg.subs`), so a session without
 * any got session present 0, as if it had been discarded.
 *
 * A session is recorded as one more subscription, to a filter no client can send (U+FFFD is refused in
 * every filter, rules.ts isWellFormed): it is stored and discarded with the others by any aedes persistence, kept
 * across restarts, and makes the stored list non-empty, which is what aedes answers session present 1
 * for. It is never matched (QoS 0: no store queues for it) and never subscribed: when aedes restores it
 * at CONNECT, the authorizeSubscribe hook refuses it, so nothing is added.
 */
import type { Aedes } from "aedes";

/** The filter that records a session. */
export const SESSION_FILTER = "\uFFFDsession";

interface Store {
  subscriptionsByClient(client: { id: string }): Promise<Array<{ topic: string }>>;
  addSubscriptions(client: { id: string }, subs: Array<{ topic: string; qos: number }>): Promise<void>;
}

export function recordSessions(aedes: Aedes): void {
  const store = (aedes as unknown as { persistence: Store }).persistence;
  // aedes reads a client's subscriptions only at a CONNECT with clean session 0.
  const subscriptionsByClient = store.subscriptionsByClient.bind(store);
  store.subscriptionsByClient = async (client) => {
    const subs = await subscriptionsByClient(client);
    // A new session (session present 0) is recorded; so is one stored before sessions were.
    if (!subs.some((s) => s.topic === SESSION_FILTER)) await store.addSubscriptions(client, [{ topic: SESSION_FILTER, qos: 0 }]);
    return subs;
  };
  const authorizeSubscribe = aedes.authorizeSubscribe;
  aedes.authorizeSubscribe = function (client, subscription, callback) {
    if (subscription.topic === SESSION_FILTER) return callback(null, null);
    authorizeSubscribe.call(this, client, subscription, callback);
  };
}
