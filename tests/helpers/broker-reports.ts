/**
 * What a broker running in this process (aedes) reports, as promises: the points a test waits for
 * before it checks that nothing (more) arrived. Call each before the thing it waits for is sent.
 *
 * - `published`: aedes reports a publish once its emitter called back, that is once every
 *   subscriber's delivery finished, each copy written to its connection.
 * - `ready`: a CONNECT finished, after the CONNACK and after a resumed session's queue was written.
 * - `acked`: a PUBACK or PUBCOMP taken off the store.
 * - `disconnected`: the broker let go of a client, after it published the client's will, if it
 *   publishes one (handed to its emitter, which delivers messages in the order it got them).
 */
import type { EventEmitter } from "node:events";
import type { Aedes } from "aedes";

/** How long a report is waited for. */
export const REPORT_MS = 5_000;

/** What the broker reports of a message it published. */
export interface PublishedPacket {
  topic: string;
  payload: Buffer;
  qos: number;
  retain: boolean;
}

type Client = { id: string };

/** The `count`th report of `event` whose arguments `match` accepts. */
function reported(aedes: Aedes, event: string, what: string, match: (...args: never[]) => boolean, count = 1): Promise<void> {
  const emitter = aedes as unknown as EventEmitter;
  let left = count;
  return new Promise<void>((resolve, reject) => {
    const listener = (...args: unknown[]) => {
      if (!match(...(args as never[])) || --left > 0) return;
      emitter.off(event, listener);
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`the broker did not report ${what} within ${REPORT_MS} ms`));
    }, REPORT_MS);
    emitter.on(event, listener);
  });
}

/** Resolves once the broker has published `count` messages `match` accepts. */
export function published(aedes: Aedes, match: (packet: PublishedPacket) => boolean, count = 1): Promise<void> {
  return reported(aedes, "publish", `${count} publish(es) of the kind wanted`, match, count);
}

/** Resolves once the broker has finished the CONNECT of `clientId` (its queue sent, if it resumed one). */
export function ready(aedes: Aedes, clientId: string): Promise<void> {
  return reported(aedes, "clientReady", `the CONNECT of ${clientId} finished`, (client: Client) => client.id === clientId);
}

/** Resolves once the broker has taken `count` PUBACKs or PUBCOMPs of `clientId` off its store. */
export function acked(aedes: Aedes, clientId: string, count = 1): Promise<void> {
  return reported(aedes, "ack", `${count} acknowledgement(s) of ${clientId}`, (_packet: unknown, client: Client) => client.id === clientId, count);
}

/** Resolves once the broker has let go of `clientId` (its will published, if it publishes one). */
export function disconnected(aedes: Aedes, clientId: string): Promise<void> {
  return reported(aedes, "clientDisconnect", `${clientId} disconnected`, (client: Client) => client.id === clientId);
}
