/**
 * An aedes persistence on one SQLite file (bun:sqlite): retained messages,
 * persistent sessions and their subscriptions, queued and in-flight QoS 1/2
 * packets, and wills survive a restart or a kill -9.
 *
 * aedes 1.x calls the promise interface of aedes-persistence 11 (the one its
 * own `asyncPersistence.js` implements): `async setup(broker)`, methods that
 * return promises, and streams for the bulk reads. The SQLite calls are
 * synchronous; every method runs to completion before it returns its promise,
 * so aedes sees each write in the order it made them.
 */
import type { Database } from "bun:sqlite";
import { DEFAULT_MAX_QUEUED_PER_CLIENT } from "../../../config/schema";
import { Readable } from "node:stream";
import type { StoredPacket } from "./codec";
import { IncomingStore } from "./incoming";
import { OutgoingQueue, type QueuePacket, type Target } from "./outgoing";
import { RetainedStore } from "./retained";
import { openBrokerDatabase } from "./schema";
import { SubscriptionStore, type Subscription } from "./subscriptions";
import { WillStore } from "./wills";

export interface SqlitePersistenceOptions {
  /** The database file (created with its folder if missing), or ":memory:". */
  file: string;
  /** Publishes queued per client; past that the oldest are dropped. */
  maxQueuedPerClient?: number;
  /** `PRAGMA wal_autocheckpoint` (unset: SQLite's default, 1,000 pages; higher while a checkpointer thread runs). */
  autoCheckpointPages?: number;
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
  private brokerRef: BrokerRef | undefined;
  private closed = false;

  constructor(options: SqlitePersistenceOptions) {
    this.db = openBrokerDatabase(options.file, options.autoCheckpointPages);
    this.retained = new RetainedStore(this.db);
    this.subscriptions = new SubscriptionStore(this.db);
    this.outgoing = new OutgoingQueue(this.db, options.maxQueuedPerClient ?? DEFAULT_MAX_QUEUED_PER_CLIENT);
    this.incoming = new IncomingStore(this.db);
    this.wills = new WillStore(this.db);
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

  async storeRetained(packet: PacketIn & { topic: string }): Promise<void> {
    this.retained.store(packet);
  }

  createRetainedStreamCombi(patterns: string[]): Readable {
    return Readable.from(this.retained.match(patterns));
  }

  /** Deprecated in aedes-persistence; kept for callers of the older interface. */
  createRetainedStream(pattern: string): Readable {
    return Readable.from(this.retained.match([pattern]));
  }

  async addSubscriptions(client: ClientRef, subs: Subscription[]): Promise<void> {
    this.subscriptions.add(client.id, subs);
  }

  async removeSubscriptions(client: ClientRef, topics: string[]): Promise<void> {
    this.subscriptions.remove(client.id, topics);
  }

  async subscriptionsByClient(client: ClientRef): Promise<Subscription[]> {
    return this.subscriptions.ofClientId(client.id);
  }

  async countOffline(): Promise<{ subsCount: number; clientsCount: number }> {
    return this.subscriptions.count();
  }

  async subscriptionsByTopic(topic: string): Promise<Array<{ clientId: string; topic: string; qos: number }>> {
    return this.subscriptions.match(topic);
  }

  async cleanSubscriptions(client: ClientRef): Promise<ClientRef> {
    this.subscriptions.clean(client.id);
    return client;
  }

  async outgoingEnqueue(sub: Target, packet: PacketIn): Promise<void> {
    this.outgoing.enqueue([sub], packet);
  }

  /** `subs` come from subscriptionsByTopic: all persistent sessions the packet is for, in one transaction. */
  async outgoingEnqueueCombi(subs: Target[], packet: PacketIn): Promise<void> {
    if (subs.length > 0) this.outgoing.enqueue(subs, packet);
  }

  async outgoingUpdate(client: ClientRef, packet: QueuePacket): Promise<void> {
    this.outgoing.update(client.id, packet);
  }

  async outgoingClearMessageId(client: ClientRef, packet: QueuePacket): Promise<StoredPacket | undefined> {
    return this.outgoing.clear(client.id, packet);
  }

  outgoingStream(client: ClientRef): Readable {
    return Readable.from(this.outgoing.stream(client.id));
  }

  async incomingStorePacket(client: ClientRef, packet: PacketIn): Promise<void> {
    this.incoming.store(client.id, packet);
  }

  async incomingGetPacket(client: ClientRef, packet: { messageId: number }): Promise<StoredPacket> {
    return this.incoming.get(client.id, packet.messageId);
  }

  async incomingDelPacket(client: ClientRef, packet: { messageId: number }): Promise<void> {
    this.incoming.remove(client.id, packet.messageId);
  }

  async cleanIncoming(client: ClientRef): Promise<void> {
    this.incoming.clean(client.id);
  }

  async putWill(client: ClientRef, packet: PacketIn): Promise<ClientRef> {
    this.wills.put(client.id, this.requireBroker().id, packet);
    return client;
  }

  async getWill(client: ClientRef): Promise<StoredPacket | undefined> {
    return this.wills.get(client.id);
  }

  async delWill(client: ClientRef): Promise<StoredPacket | undefined> {
    return this.wills.remove(client.id);
  }

  streamWill(brokers: Record<string, unknown> = {}): Readable {
    return Readable.from(this.wills.notOf(brokers));
  }

  getClientList(topic: string): Readable {
    return Readable.from(this.subscriptions.clientIds(topic));
  }

  /** Closes the database. Calling it again does nothing. */
  async destroy(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  private requireBroker(): BrokerRef {
    if (!this.brokerRef) throw new Error("persistence used before setup()");
    return this.brokerRef;
  }
}
