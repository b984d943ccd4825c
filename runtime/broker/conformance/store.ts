/**
 * Rules applied on the session store: DUP on PUBLISH packets sent again after a reconnect
 * [MQTT-3.3.1-1], a resumed session's new packets numbered clear of its unacknowledged ones
 * [MQTT-2.3.1-4], no `$` topics among the retained messages for filters that start with a wildcard
 * [MQTT-4.7.2-1]. (One queued copy per client however many of its filters match [MQTT-3.3.5-1] is
 * the store's own rule: persistence/outgoing.ts `onePerClient`, for both `broker.persistence` values.)
 */
import { pipeline, Transform, type Readable } from "node:stream";
import type { Aedes } from "aedes";
import { topicMatches } from "../../protocol";
import { freshStart } from "./ids";
import { resumptionOf } from "./resume";

/** What the store is given as a client (aedes' Client): whether its session is clean, its next packet identifier. */
interface SessionClient {
  clean?: boolean;
  _nextId?: number;
}

type Persistence = {
  outgoingStream(client: SessionClient): Readable;
  /** The SQLite store's: the packet identifiers the client's session has in use. */
  outgoingIdsInUse?(client: SessionClient): number[];
  createRetainedStreamCombi(patterns: string[]): Readable;
};

export function wrapStore(aedes: Aedes): void {
  const persistence = (aedes as unknown as { persistence: Persistence }).persistence;
  // [MQTT-3.3.1-1] a queued PUBLISH that already has a packet identifier was sent before: when the
  // session resumes it goes out again with that identifier [MQTT-4.4.0-1], and with DUP set. One
  // queued while the client was offline has none yet: its first delivery has DUP 0 [MQTT-3.3.1-3].
  //
  // [MQTT-4.4.0-1] a message of this broker that already reached a resumed session live is not sent
  // from its queue too (resume.ts); what is sent from the queue is not sent live.
  const outgoingStream = persistence.outgoingStream.bind(persistence);
  persistence.outgoingStream = (client) => {
    const resumption = client.clean ? null : resumptionOf(client);
    // [MQTT-2.3.1-4] new packets numbered where the session's unacknowledged ones are not (ids.ts).
    if (!client.clean && persistence.outgoingIdsInUse) {
      const start = freshStart(persistence.outgoingIdsInUse(client));
      if (start !== undefined) client._nextId = start;
    }
    const done = () => resumption?.doneReading();
    return through(
      outgoingStream(client),
      (packet: { cmd?: string; messageId?: number | null; dup?: boolean; brokerId?: string; brokerCounter?: number }) => {
        if ((packet.cmd ?? "publish") !== "publish") return packet;
        if (resumption && packet.brokerId === aedes.id && !resumption.takeQueued(packet.brokerCounter!)) return undefined;
        return packet.messageId != null ? { ...packet, dup: true } : packet;
      },
      done,
    );
  };
  // [MQTT-4.7.2-1] a `$` topic's retained message only for a filter that does not start with a wildcard.
  const retained = persistence.createRetainedStreamCombi.bind(persistence);
  persistence.createRetainedStreamCombi = (patterns) =>
    through(retained(patterns), (packet: { topic: string }) =>
      !packet.topic.startsWith("$") || patterns.some((p) => topicMatches(p, packet.topic)) ? packet : undefined,
    );
}

/**
 * `source` mapped through `fn` (undefined drops the item); errors travel downstream. `end` is called
 * once every item went through `fn`, or the stream failed.
 */
function through<T, U>(source: Readable, fn: (item: T) => U | undefined, end: () => void = () => {}): Readable {
  const map = new Transform({
    objectMode: true,
    transform(item: T, _encoding, callback) {
      const out = fn(item);
      if (out !== undefined) this.push(out);
      callback();
    },
    flush(callback) {
      end();
      callback();
    },
  });
  return pipeline(source, map, end);
}
