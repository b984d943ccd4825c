/**
 * Topic ACL rules and how they decide (used by acl.ts), as mosquitto's dynamic-security plugin decides
 * between allow and deny rules, with specificity in place of its priorities:
 *
 * - A rule is a topic filter that allows or denies one action (publish, or subscribe). Only the rules
 *   whose filter covers the topic take part (for a SUBSCRIBE, the filter asked for: covered when every
 *   topic it matches matches the rule's filter).
 * - The most specific of them decides: the one whose filter has the most literal levels (levels that are
 *   neither `+` nor `#`; `secrets/#` has 1, `secrets/+/key` 2, `#` none). Among equally specific ones a
 *   deny wins. No rule covering the topic: denied.
 * - A client's rules are those of all its roles together.
 *
 * `%u` (the identity) and `%c` (the client id) are substituted in a rule's levels, once (a value that
 * reads `%c` is not replaced by the client id). A value that could
 * widen an allow rule or reach a reserved namespace (empty, with `+`, `#` or `/`, a leading `$`, a platform
 * root) makes the level match nothing in an allow rule and match any value (`+`) in a deny rule: a value
 * that cannot be substituted never grants more, nor denies less.
 */

/** One role's rules, as configured (`auth.mqtt.acl.<role>`). */
export interface AclEntry {
  publish: string[];
  subscribe: string[];
  deny?: { publish?: string[]; subscribe?: string[] };
}

export type Action = "publish" | "subscribe";

export interface Rule {
  /** The filter's levels, after substitution. */
  levels: string[];
  /** Levels that are neither `+` nor `#`. */
  literal: number;
  deny: boolean;
}

/** A level no topic has: what an allow rule's unsafe substitution becomes. */
const NOTHING = "\u0000";

/** A client's rules for one action: every role's allow and deny rules, substituted. */
export function compileRules(
  acl: Readonly<Record<string, AclEntry | undefined>>,
  roles: readonly string[],
  action: Action,
  user: string,
  clientId: string,
  isReserved: (value: string) => boolean,
): Rule[] {
  const rules: Rule[] = [];
  for (const role of roles) {
    const entry = acl[role];
    if (!entry) continue;
    for (const pattern of entry[action] ?? []) rules.push(rule(pattern, false, user, clientId, isReserved));
    for (const pattern of entry.deny?.[action] ?? []) rules.push(rule(pattern, true, user, clientId, isReserved));
  }
  return rules;
}

function rule(pattern: string, deny: boolean, user: string, clientId: string, isReserved: (value: string) => boolean): Rule {
  const levels = pattern.split("/");
  if (pattern.includes("%")) {
    // (%c is chosen by the client: it grants nothing exclusive; use %u for per-device topics.)
    const unsafe = (s: string) => s === "" || /[+#/]/.test(s) || s.startsWith("$") || isReserved(s);
    for (let i = 0; i < levels.length; i++) {
      const level = levels[i]!;
      if (!level.includes("%")) continue;
      const usesUser = level.includes("%u");
      const usesClient = level.includes("%c");
      if ((usesUser && unsafe(user)) || (usesClient && unsafe(clientId))) levels[i] = deny ? "+" : NOTHING;
      // In one pass: a value that reads `%c` or `%u` is not substituted again.
      else levels[i] = level.replace(/%[uc]/g, (v) => (v === "%u" ? user : clientId));
    }
  }
  let literal = 0;
  for (const level of levels) if (level !== "+" && level !== "#") literal++;
  return { levels, literal, deny };
}

/** Whether `rules` allow `topic` (a topic name, or the filter of a SUBSCRIBE): see the file's comment. */
export function decide(rules: readonly Rule[], topic: string): boolean {
  const t = topic.split("/");
  let best = -1;
  let allowed = false;
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i]!;
    // A less specific rule cannot change the decision; an equally specific allow cannot either.
    if (r.literal < best || (r.literal === best && !r.deny) || !coversLevels(r.levels, t)) continue;
    if (r.literal > best) {
      best = r.literal;
      allowed = !r.deny;
    } else allowed = false;
  }
  return allowed;
}

/**
 * Whether ACL filter `pattern` covers `topic` (a topic name, or a filter: then every topic the
 * filter matches must match the pattern). `$` topics are covered only by patterns that name
 * their first level [MQTT-4.7.2-1].
 */
export function covers(pattern: string, topic: string): boolean {
  return coversLevels(pattern.split("/"), topic.split("/"));
}

function coversLevels(p: readonly string[], t: readonly string[]): boolean {
  if (t[0]!.startsWith("$") && p[0] !== t[0]) return false;
  for (let i = 0; i < p.length; i++) {
    const level = p[i]!;
    if (level === "#") return true;
    if (i >= t.length) return false;
    if (level === "+") {
      if (t[i] === "#") return false;
      continue;
    }
    if (level !== t[i]) return false;
  }
  return p.length === t.length;
}
