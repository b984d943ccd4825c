/**
 * [MQTT-4.3.2-2] A QoS 1 PUBLISH is acknowledged "having accepted ownership of the Application
 * Message": here, once it is stored (the retained message, the queues of the persistent sessions it is
 * for: committed, see persistence/commit.ts). aedes writes the PUBACK first and publishes after
 * (lib/handlers/publish.js), so a crash right after that PUBACK would lose the message. A QoS 2 PUBLISH already
 * gets its PUBREC after aedes' publish [MQTT-4.3.3-2].
 *
 * aedes asks authorizePublish before it acknowledges. A QoS 1 PUBLISH from a client that has something
 * to store (retained, or matching a persistent session's subscription) is published there, once
 * authorized, and authorized (so acknowledged) when aedes has stored it: its retained message first,
 * then its queued copies (aedes calls outgoingEnqueueCombi for every QoS 1/2 message, for no session
 * too; the copy is known by its payload, the same object). aedes publishes in that order, storing
 * before it delivers (aedes.js `publishFuncsQoS`), so the PUBACK and the delivery to connected clients
 * both start once the message is stored, and the PUBACK does not wait for the delivery. The message was
 * numbered when its publish started: messages numbered after it may reach subscribers first
 * (delivery.ts keeps aedes from taking it for a copy then). The publish aedes starts after its PUBACK
 * is skipped for that packet and reports when the first one has finished, so aedes counts the packet
 * as handled (its `_parsingBatch`) then, as it does without this module. One with nothing to store
 * takes aedes' own way.
 */
import type { Aedes, Client } from "aedes";

type Done = (err?: Error | null) => void;
type Publish = (packet: object, client?: Client | Done | null, done?: Done) => void;
type EnqueueCombi = (subs: unknown[], packet: { payload?: unknown }) => Promise<void>;

interface Store {
  outgoingEnqueueCombi: EnqueueCombi;
  /** The SQLite store's: whether a QoS 1/2 message on the topic is queued for a persistent session. */
  queuesFor?(topic: string): boolean;
}

/** A QoS 1 PUBLISH from a client, published from authorizePublish. */
interface Flight {
  finished: boolean;
  error: Error | null;
  /** aedes' own publish of the packet, waiting for the first to finish. */
  waiting: Done | null;
}

export function acknowledgeWhenStored(aedes: Aedes): void {
  const broker = aedes as unknown as { publish: Publish; persistence: Store };
  const publish = broker.publish.bind(aedes) as Publish;
  const store = broker.persistence;
  const flights = new WeakMap<object, Flight>();
  /** Acknowledgements waiting for their message to be queued, by its payload. */
  const whenStored = new WeakMap<object, () => void>();

  const enqueueCombi = store.outgoingEnqueueCombi.bind(store) as EnqueueCombi;
  store.outgoingEnqueueCombi = (subs, packet) => {
    const queued = enqueueCombi(subs, packet);
    const stored = typeof packet.payload === "object" && packet.payload ? whenStored.get(packet.payload) : undefined;
    // A failure fails the publish, which then answers instead.
    if (stored) queued.then(stored, () => {});
    return queued;
  };

  const authorizePublish = aedes.authorizePublish;
  aedes.authorizePublish = function (client, packet, callback) {
    // A will (no cmd) and the broker's own publishes are not acknowledged to anyone; nothing to store, nothing to wait for.
    const own = client && packet.cmd === "publish" && packet.qos === 1;
    if (!own || !(packet.retain || !store.queuesFor || store.queuesFor(packet.topic))) return authorizePublish.call(this, client, packet, callback);
    authorizePublish.call(this, client, packet, (err) => {
      if (err) return callback(err);
      const flight: Flight = { finished: false, error: null, waiting: null };
      flights.set(packet, flight);
      let answered = false;
      const answer = (err: Error | null) => {
        if (answered) return;
        answered = true;
        callback(err);
      };
      const payload = packet.payload as unknown;
      if (typeof payload === "object" && payload) whenStored.set(payload, () => answer(null));
      publish(packet, client, (err) => {
        flight.finished = true;
        flight.error = err ?? null;
        answer(flight.error); // not stored (an error), or its copy was not recognised
        flight.waiting?.(flight.error);
      });
    });
  };

  broker.publish = (packet, client, done) => {
    const flight = flights.get(packet);
    if (!flight) return publish(packet, client, done);
    flights.delete(packet);
    const finish = (typeof client === "function" ? client : done) ?? (() => {});
    if (flight.finished) finish(flight.error);
    else flight.waiting = finish;
  };
}
