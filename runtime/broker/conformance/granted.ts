/**
 * The QoS a client's subscriptions grant to a topic: the highest among those whose filter matches it
 * [MQTT-3.3.5-1] [MQTT-3.8.4-6]. Runs once or twice per QoS 1/2 delivery, so it allocates nothing.
 */

/** A client's subscriptions as aedes keeps them (not in its typings): by filter, with the QoS granted. */
export type Subscriptions = Record<string, { qos: number }>;

/** The highest QoS granted by the subscriptions that match the topic; -1 if none does. */
export function grantedQoS(subscriptions: Subscriptions | undefined, topic: string): number {
  let max = -1;
  for (const filter in subscriptions) {
    const qos = subscriptions[filter]!.qos;
    if (qos > max && matches(filter, topic)) {
      if (qos === 2) return 2;
      max = qos;
    }
  }
  return max;
}

const SLASH = 47;
const PLUS = 43;
const HASH = 35;
const DOLLAR = 36;

/**
 * Whether a (valid) topic filter matches a topic name, as aedes matches them: `+` is one level, possibly
 * empty; `#` is the rest, the parent level included (`a/#` matches `a`) [MQTT-4.7.1-2] [MQTT-4.7.1-3];
 * a filter starting with a wildcard matches no `$` topic [MQTT-4.7.2-1].
 */
export function matches(filter: string, topic: string): boolean {
  if (filter === topic) return true;
  const first = filter.charCodeAt(0);
  if (topic.charCodeAt(0) === DOLLAR && (first === HASH || first === PLUS)) return false;
  const fl = filter.length;
  const tl = topic.length;
  let f = 0;
  let t = 0;
  while (f < fl) {
    const c = filter.charCodeAt(f);
    if (c === HASH) return true;
    if (c === PLUS) {
      while (t < tl && topic.charCodeAt(t) !== SLASH) t++;
      f++;
    } else if (t < tl && topic.charCodeAt(t) === c) {
      f++;
      t++;
    } else {
      // The topic ended where the filter goes on with "/#".
      return t === tl && c === SLASH && f + 2 === fl && filter.charCodeAt(f + 1) === HASH;
    }
  }
  return t === tl;
}
