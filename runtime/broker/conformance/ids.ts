/**
 * [MQTT-2.3.1-4] A new PUBLISH (QoS > 0) to a client gets a packet identifier not in use. aedes numbers
 * each connection's packets on from a random start (lib/client.js `_nextId`), while a resumed session's
 * unacknowledged packets keep the identifiers of an earlier connection, or of the broker before a
 * restart. A new packet given one of them was two messages under one identifier: the client took the
 * second for a resend of the first (a QoS 2 message lost), the store matched the wrong one (a message
 * cleared unacknowledged, or replaced in the queue). When a session resumes, the numbering moves to the
 * start of the longest run of identifiers its queue does not use.
 */

const MAX_ID = 65535;

/** The first identifier of the longest run of identifiers (1 to 65535, in turn) not among `inUse`; undefined if none is in use. */
export function freshStart(inUse: number[]): number | undefined {
  if (inUse.length === 0) return undefined;
  const ids = [...new Set(inUse)].sort((a, b) => a - b);
  let best = 0;
  let start = 1;
  for (let i = 0; i < ids.length; i++) {
    const from = ids[i]!;
    // The run after `from`, up to the next one in use (past 65535, around to the first).
    const to = i + 1 < ids.length ? ids[i + 1]! : ids[0]! + MAX_ID;
    if (to - from - 1 > best) {
      best = to - from - 1;
      start = from >= MAX_ID ? 1 : from + 1;
    }
  }
  return start;
}
