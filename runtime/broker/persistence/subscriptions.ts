/**
 * Subscriptions of persistent sessions: written through to SQLite, and kept
 * in an in-memory trie (QoS > 0 only, as aedes only queues those) that is
 * loaded from SQLite at start, so matching a publish costs no query.
 */
import type { Database } from "bun:sqlite";
import QlobberSub, { type TrieSubscription } from "qlobber/aedes/qlobber-sub.js";
import { QLOBBER_OPTIONS } from "./filters";
import { pages } from "./paging";

/** A subscription as aedes hands it over (the SUBSCRIBE packet's fields) and gets it back. */
export interface Subscription {
  topic: string;
  qos: number;
  rh?: number;
  rap?: boolean;
  nl?: boolean;
  /** MQTT 5 Subscription Identifier, restored with the session. */
  subscriptionIdentifier?: number;
}

type Options = Omit<Subscription, "topic">;

function statements(db: Database) {
  return {
    upsert: db.query(
      "INSERT INTO subscriptions (client_id, topic, qos, options) VALUES (?, ?, ?, ?) ON CONFLICT (client_id, topic) DO UPDATE SET qos = excluded.qos, options = excluded.options",
    ),
    remove: db.query("DELETE FROM subscriptions WHERE client_id = ? AND topic = ?"),
    removeClient: db.query("DELETE FROM subscriptions WHERE client_id = ?"),
    ofClient: db.query<{ topic: string; options: string }, [string]>("SELECT topic, options FROM subscriptions WHERE client_id = ? ORDER BY id"),
    topicsOfClient: db.query<{ topic: string }, [string]>("SELECT topic FROM subscriptions WHERE client_id = ?"),
    clients: db.query<{ n: number }, []>("SELECT COUNT(DISTINCT client_id) AS n FROM subscriptions"),
    clientsOf: db.query<{ id: number; client_id: string }, [string, number, number]>(
      "SELECT id, client_id FROM subscriptions WHERE topic = ? AND id > ? ORDER BY id LIMIT ?",
    ),
  };
}

export class SubscriptionStore {
  private readonly trie = new QlobberSub(QLOBBER_OPTIONS);
  private readonly sql: ReturnType<typeof statements>;
  private readonly write: (clientId: string, subs: Subscription[]) => void;
  private readonly unwrite: (clientId: string, topics: string[]) => void;

  constructor(private readonly db: Database) {
    const sql = (this.sql = statements(db));
    this.write = db.transaction((clientId: string, subs: Subscription[]) => {
      for (const sub of subs) sql.upsert.run(clientId, sub.topic, sub.qos, JSON.stringify(options(sub)));
    });
    this.unwrite = db.transaction((clientId: string, topics: string[]) => {
      for (const topic of topics) sql.remove.run(clientId, topic);
    });
  }

  /** Fills the trie from the file (once, at start). */
  load(): void {
    const rows = this.db.query("SELECT client_id, topic, options FROM subscriptions WHERE qos > 0 ORDER BY id");
    for (const row of rows.iterate() as IterableIterator<{ client_id: string; topic: string; options: string }>) {
      this.trie.add(row.topic, trieEntry(row.client_id, row.topic, JSON.parse(row.options) as Options));
    }
  }

  /** Adds or replaces the client's subscriptions; a later one for the same filter wins. */
  add(clientId: string, subs: Subscription[]): void {
    this.write(clientId, subs);
    for (const sub of subs) {
      if (sub.qos > 0) this.trie.add(sub.topic, trieEntry(clientId, sub.topic, sub));
      else this.trie.remove(sub.topic, { clientId, topic: sub.topic });
    }
  }

  remove(clientId: string, topics: string[]): void {
    this.unwrite(clientId, topics);
    for (const topic of topics) this.trie.remove(topic, { clientId, topic });
  }

  clean(clientId: string): void {
    const topics = this.sql.topicsOfClient.all(clientId).map((row) => row.topic);
    this.sql.removeClient.run(clientId);
    for (const topic of topics) this.trie.remove(topic, { clientId, topic });
  }

  /** The client's subscriptions in the order they were first made. */
  ofClientId(clientId: string): Subscription[] {
    return this.sql.ofClient.all(clientId).map((row) => {
      const o = JSON.parse(row.options) as Options;
      const sub: Subscription = { topic: row.topic, qos: o.qos, rh: o.rh, rap: o.rap, nl: o.nl };
      if (o.subscriptionIdentifier !== undefined) sub.subscriptionIdentifier = o.subscriptionIdentifier;
      return sub;
    });
  }

  /** Subscriptions (QoS > 0) whose filter matches the topic. */
  match(topic: string): TrieSubscription[] {
    return this.trie.match(topic);
  }

  /** Whether a subscription (QoS > 0) matches the topic: a QoS 1/2 message to it is queued for someone. */
  matchesAny(topic: string): boolean {
    return this.trie.match(topic).length > 0;
  }

  /** QoS > 0 subscriptions, and clients with at least one subscription. */
  count(): { subsCount: number; clientsCount: number } {
    return { subsCount: this.trie.subscriptionsCount, clientsCount: this.sql.clients.get()!.n };
  }

  /** Clients subscribed to exactly this filter. */
  *clientIds(topic: string): Generator<string> {
    for (const row of pages((after, limit) => this.sql.clientsOf.all(topic, after, limit), 0, (r) => r.id)) yield row.client_id;
  }
}

function options(sub: Subscription): Options {
  const o: Options = { qos: sub.qos, rh: sub.rh, rap: sub.rap, nl: sub.nl };
  if (sub.subscriptionIdentifier !== undefined) o.subscriptionIdentifier = sub.subscriptionIdentifier;
  return o;
}

// The trie keeps what aedes-persistence's own trie keeps: no subscription identifier.
function trieEntry(clientId: string, topic: string, o: Options): TrieSubscription {
  return { clientId, topic, qos: o.qos, rh: o.rh, rap: o.rap, nl: o.nl };
}
