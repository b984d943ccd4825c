/** MQTT topic filters: how qlobber reads them, and where the topics a filter matches can be. */

/** As aedes's own message router: "+" matches an empty level too ("a/+" matches "a/") [MQTT-4.7.1-3]. */
export const QLOBBER_OPTIONS = { separator: "/", wildcard_one: "+", wildcard_some: "#", match_empty_levels: true };

/** Where the topics a filter matches can lie: the one topic, under a literal prefix, or anywhere. */
export type Scope = { kind: "exact"; topic: string } | { kind: "under"; prefix: string; withPrefix: boolean } | { kind: "all" };

export function filterScope(filter: string): Scope {
  const levels = filter.split("/");
  const wild = levels.findIndex((level) => level === "+" || level === "#");
  if (wild === -1) return { kind: "exact", topic: filter };
  if (wild === 0) return { kind: "all" };
  // "a/b/#" also matches "a/b" [MQTT-4.7.1-2]; every other match lies under "a/b/".
  return { kind: "under", prefix: levels.slice(0, wild).join("/"), withPrefix: levels[wild] === "#" && wild === levels.length - 1 };
}

/** A filter starting with a wildcard does not match topics starting with "$" [MQTT-4.7.2-1]. */
export function skipsDollarTopics(filter: string): boolean {
  return filter.startsWith("+") || filter.startsWith("#");
}
