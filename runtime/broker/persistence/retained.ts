/**
 * Retained messages, one per topic. A lookup reads only the topics a filter
 * can match: the topic itself for a filter without wildcards, the range under
 * its literal prefix otherwise, and every topic only for a filter that starts
 * with a wildcard.
 */
import type { Database } from "bun:sqlite";
import { QlobberTrue } from "qlobber";
import { decodePacket, encodePacket, type StoredPacket } from "./codec";
import { filterScope, QLOBBER_OPTIONS, skipsDollarTopics, type Scope } from "./filters";
import { pages } from "./paging";

interface Row {
  topic: string;
  payload: Uint8Array | string | null;
  meta: string;
}

function statements(db: Database) {
  return {
    upsert: db.query<void, [string, Uint8Array | string | null, string]>(
      "INSERT INTO retained (topic, payload, meta) VALUES (?, ?, ?) ON CONFLICT (topic) DO UPDATE SET payload = excluded.payload, meta = excluded.meta",
    ),
    remove: db.query<void, [string]>("DELETE FROM retained WHERE topic = ?"),
    one: db.query<Row, [string]>("SELECT topic, payload, meta FROM retained WHERE topic = ?"),
    range: db.query<Row, [string, string, number]>("SELECT topic, payload, meta FROM retained WHERE topic > ? AND topic < ? ORDER BY topic LIMIT ?"),
    all: db.query<Row, [string, number]>("SELECT topic, payload, meta FROM retained WHERE topic > ? ORDER BY topic LIMIT ?"),
  };
}

export class RetainedStore {
  private readonly sql: ReturnType<typeof statements>;

  constructor(db: Database) {
    this.sql = statements(db);
  }

  /** An empty payload removes the topic's retained message [MQTT-3.3.1-10]. */
  store(packet: { topic: string; payload?: unknown }): void {
    const payload = packet.payload as Uint8Array | string | undefined;
    if (payload === undefined || payload.length === 0) {
      this.sql.remove.run(packet.topic);
      return;
    }
    const encoded = encodePacket(packet);
    this.sql.upsert.run(packet.topic, encoded.payload, encoded.meta);
  }

  /** Retained messages matching any of the filters, each once. */
  *match(filters: string[]): Generator<StoredPacket> {
    // Only a topic two filters both match can come twice: with one filter, nothing is remembered.
    const seen = filters.length > 1 ? new Set<string>() : null;
    for (const filter of filters) {
      const scope = filterScope(filter);
      // "a/b/#": every candidate matches (the range under "a/b/", and "a/b" itself).
      const matcher = scope.kind === "under" && scope.withPrefix ? null : new QlobberTrue(QLOBBER_OPTIONS).add(filter);
      const skipDollar = skipsDollarTopics(filter);
      for (const row of this.candidates(scope)) {
        if (seen?.has(row.topic) || (matcher && !matcher.test(row.topic)) || (skipDollar && row.topic.startsWith("$"))) continue;
        seen?.add(row.topic);
        yield decodePacket(row.payload, row.meta);
      }
    }
  }

  private *candidates(scope: Scope): Generator<Row> {
    if (scope.kind === "all") {
      yield* pages((after, limit) => this.sql.all.all(after, limit), "", (row) => row.topic);
      return;
    }
    const exact = scope.kind === "exact" ? [scope.topic] : scope.withPrefix ? [scope.prefix, `${scope.prefix}/`] : [`${scope.prefix}/`];
    for (const topic of exact) {
      const row = this.sql.one.get(topic);
      if (row) yield row;
    }
    if (scope.kind === "under") {
      // "/" + 1 is "0": after "prefix/" and before "prefix0" lie exactly the topics longer than "prefix/" that start with it.
      yield* pages((after, limit) => this.sql.range.all(after, `${scope.prefix}0`, limit), `${scope.prefix}/`, (row) => row.topic);
    }
  }
}
