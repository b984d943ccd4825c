/**
 * An aedes persistence on one SQLite file (bun:sqlite): retained messages,
 * persistent sessions and their subscriptions, queued and in-flight QoS 1/2
 * packets, and wills survive a restart or a kill -9.
 *
 * aedes 1.x calls the promise interface of aedes-persistence 11 (the one its
 * own `asyncPersistence.js` implements): `async setup(broker)`, methods that
 * return promises, and streams for the bulk reads. The SQLite calls are
 * synchronous; every method runs to completion before it returns its promise,
 * so aedes sees each write in the order it made them. The promise of a write
 * settles once it is committed (commit.ts: one commit per event-loop round),
 * and so does that of a read that decides an answer to a client: aedes
 * acknowledges what the store has committed, nothing before.
 */
import type { Database } from "bun:sqlite";
import { DEFAULT_MAX_QUEUED_PER_CLIENT } from "../../../config/schema";
import { Readable } from "node:stream";
import type { StoredPacket } from "./codec";
import { GroupCommit } from "./commit";
import { IncomingStore } from "./incoming";
import { OutgoingQueue, type QueuePacket, type Target } from "./outgoing";
import { RetainedStore } from "./retained";
import type { Logger } from "../../log";
import type { StoreOptions } from "../../storage/open";
import { openBrokerDatabase } from "./schema";
import { SubscriptionStore, type Subscription } from "./subscriptions";
import { WillStore } from "./wills";

export interface SqlitePersistenceOptions {
  /** The database file (created with its folder if missing), or ":memory:". */
  file: string;
  /** Publishes queued per client; past that the oldest are dropped. */
  maxQueuedPerClient?: number;
  /** Durability and checkpoints (default: durability "full", SQLite's own checkpoints). */
  store?: StoreOptions;
  /** Hears of a store too big to check at start. */
  log?: Pick<Logger, "warn">;
}

/** A packet as aedes passes it (an aedes-packet Packet, or a plain object in the contract tests). */
interface PacketIn {
  topic?: string;
  payload?: unknown;
  messageId?: number;
  [key: string]: unknown;
}

/** What aedes passes as a client: only the id is used. */
interface ClientRef {
  id: string;
}

/** The part of the aedes broker used here (and all the contract tests' stand-in provides). */
interface BrokerRef {
  id: string;
}

export class SqlitePersistence {
  private readonly db: Database;
  private readonly retained: RetainedStore;
  private readonly subscriptions: SubscriptionStore;
  private readonly outgoing: OutgoingQueue;
  private readonly incoming: IncomingStore;
  private readonly wills: WillStore;
  private readonly group: GroupCommit;
  private brokerRef: BrokerRef | undefined;
  private closed = false;
  /** Called after subscriptions are added (the broker ticks its SubscriptionClock). */
  onSubscribed: () => void = () => {};

  constructor(options: SqlitePersistenceOptions) {
    this.db = openBrokerDatabase(options.file, options.store ?? { durability: "full" }, options.log);
    this.retained = new RetainedStore(this.db);
    this.subscriptions = new SubscriptionStore(this.db);
    this.outgoing = new OutgoingQueue(this.db, options.maxQueuedPerClient ?? DEFAULT_MAX_QUEUED_PER_CLIENT);
    this.incoming = new IncomingStore(this.db);
    this.wills = new WillStore(this.db);
    this.group = new GroupCommit(this.db);
  }

  /** The broker given to setup(). */
  get broker(): BrokerRef | undefined {
    return this.brokerRef;
  }

  /** Publishes dropped from full client queues since this persistence was opened (for $SYS). */
  droppedMessages(): number {
    return this.outgoing.dropped;
  }

  // aedes checks that this is an AsyncFunction.
  async setup(broker: BrokerRef): Promise<void> {
    this.brokerRef = broker;
    this.subscriptions.load();
  }

  storeRetained(packet: PacketIn & { topic: string }): Promise<void> {
    return this.group.write(() => this.retained.store(packet));
  }

  createRetainedStreamCombi(patterns: string[]): Readable {
    return streamOf(() => this.retained.match(patterns));
  }

  /** Deprecated in aedes-persistence; kept for callers of the older interface. */
  createRetainedStream(pattern: string): Readable {
    return streamOf(() => this.retained.match([pattern]));
  }

  addSubscriptions(client: ClientRef, subs: Subscription[]): Promise<void> {
    return this.group.write(() => {
      this.subscriptions.add(client.id, subs);
      this.onSubscribed();
    });
  }

  removeSubscriptions(client: ClientRef, topics: string[]): Promise<void> {
    return this.group.write(() => this.subscriptions.remove(client.id, topics));
  }

  subscriptionsByClient(client: ClientRef): Promise<Subscription[]> {
    return this.group.read(() => this.subscriptions.ofClientId(client.id));
  }

  async countOffline(): Promise<{ subsCount: number; clientsCount: number }> {
    return this.subscriptions.count();
  }

  /** Whether a QoS 1/2 message on the topic is queued for a persistent session (synchronous: the in-memory trie). */
  queuesFor(topic: string): boolean {
    return this.subscriptions.matchesAny(topic);
  }

  async subscriptionsByTopic(topic: string): Promise<Array<{ clientId: string; topic: string; qos: number }>> {
    return this.subscriptions.match(topic);
  }

  cleanSubscriptions(client: ClientRef): Promise<ClientRef> {
    return this.group.write(() => (this.subscriptions.clean(client.id), client));
  }

  outgoingEnqueue(sub: Target, packet: PacketIn): Promise<void> {
    return this.group.write(() => this.outgoing.enqueue([sub], packet));
  }

  /** `subs` come from subscriptionsByTopic: all persistent sessions the packet is for, in one transaction. */
  outgoingEnqueueCombi(subs: Target[], packet: PacketIn): Promise<void> {
    return subs.length > 0 ? this.group.write(() => this.outgoing.enqueue(subs, packet)) : Promise.resolve();
  }

  outgoingUpdate(client: ClientRef, packet: QueuePacket): Promise<void> {
    return this.group.write(() => this.outgoing.update(client.id, packet));
  }

  outgoingClearMessageId(client: ClientRef, packet: QueuePacket): Promise<StoredPacket | undefined> {
    return this.group.write(() => this.outgoing.clear(client.id, packet));
  }

  /** Packet identifiers the client's session has in use (sent, not yet acknowledged): not for new packets. */
  outgoingIdsInUse(client: ClientRef): number[] {
    return this.outgoing.idsInUse(client.id);
  }

  outgoingStream(client: ClientRef): Readable {
    return streamOf(() => this.outgoing.stream(client.id));
  }

  incomingStorePacket(client: ClientRef, packet: PacketIn): Promise<void> {
    return this.group.write(() => this.incoming.store(client.id, packet));
  }

  /** Rejects ("no such packet") at once when there is none: only a packet found decides a PUBREC. */
  incomingGetPacket(client: ClientRef, packet: { messageId: number }): Promise<StoredPacket> {
    return this.group.read(() => this.incoming.get(client.id, packet.messageId));
  }

  incomingDelPacket(client: ClientRef, packet: { messageId: number }): Promise<void> {
    return this.group.write(() => this.incoming.remove(client.id, packet.messageId));
  }

  cleanIncoming(client: ClientRef): Promise<void> {
    return this.group.write(() => this.incoming.clean(client.id));
  }

  async putWill(client: ClientRef, packet: PacketIn): Promise<ClientRef> {
    const brokerId = this.requireBroker().id;
    return this.group.write(() => (this.wills.put(client.id, brokerId, packet), client));
  }

  getWill(client: ClientRef): Promise<StoredPacket | undefined> {
    return this.group.read(() => this.wills.get(client.id));
  }

  delWill(client: ClientRef): Promise<StoredPacket | undefined> {
    return this.group.write(() => this.wills.remove(client.id));
  }

  streamWill(brokers: Record<string, unknown> = {}): Readable {
    return streamOf(() => this.wills.notOf(brokers));
  }

  getClientList(topic: string): Readable {
    return streamOf(() => this.subscriptions.clientIds(topic));
  }

  /** Closes the database. Calling it again does nothing. */
  async destroy(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.group.flush();
    this.db.close();
  }

  private requireBroker(): BrokerRef {
    if (!this.brokerRef) throw new Error("persistence used before setup()");
    return this.brokerRef;
  }
}

/**
 * A stream of the items; what fails while it is made (the database closed as a client connects during
 * shutdown) is the stream's error, never a throw into aedes, which does not expect one.
 */
function streamOf<T>(items: () => Iterable<T>): Readable {
  try {
    return Readable.from(items());
  } catch (err) {
    const failed = new Readable({ objectMode: true, read() {} });
    process.nextTick(() => failed.destroy(err as Error));
    return failed;
  }
}
