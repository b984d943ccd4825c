/**
 * [MQTT-4.4.0-1] [MQTT-4.3.2-1] A resumed persistent session gets each message once, by one way.
 *
 * When a session resumes, aedes restores its subscriptions before CONNACK, so messages published from
 * then on reach the client live (delivery.ts), and after CONNACK it sends what the session's queue
 * holds (lib/handlers/connect.js `emptyQueue`, read through store.ts). A message queued before the
 * queue was read and published to the client's restored subscriptions went both ways: the client got
 * it twice, and when it acknowledged the first copy before the second was marked as sent, the store
 * had no such packet any more and aedes closed the connection (most often after a restart, when
 * publishers and subscribers reconnect at once).
 *
 * Here a message of this broker (only those can also come live) is sent by whichever way reaches it
 * first; the other skips it. What the live way sent is remembered only while the queue is read; what
 * the queue sent, until the live way meets it (at most the queue's length).
 */
import type { Client } from "aedes";

export class Resumption {
  /** Broker counters of the messages sent live while the queue is being read. */
  private readonly live = new Set<number>();
  /** Broker counters of the messages the queue sent, not met by the live way yet. */
  private readonly queued = new Set<number>();
  private reading = true;

  /** The live way may send this message (false: the queue sent it). */
  takeLive(counter: number): boolean {
    if (this.queued.delete(counter)) return false;
    if (this.reading) this.live.add(counter);
    return true;
  }

  /** The queue may send this message (false: it was sent live). */
  takeQueued(counter: number): boolean {
    if (this.live.delete(counter)) return false;
    this.queued.add(counter);
    return true;
  }

  /** The queue has been read: whatever comes live from now on was not in it. */
  doneReading(): void {
    this.reading = false;
    this.live.clear();
  }
}

const resumptions = new WeakMap<object, Resumption>();

/** The connection's resumption state (one per aedes Client, that is per connection). */
export function resumptionOf(client: Client | object): Resumption {
  let r = resumptions.get(client);
  if (!r) resumptions.set(client, (r = new Resumption()));
  return r;
}
