/**
 * [MQTT-3.3.5-1] Which of the deliveries handed to a client are copies of one message (one per matching
 * subscription), by the message's broker id and counter.
 *
 * The broker's emitter hands a message to every matching subscription in one synchronous loop
 * (emitter.ts `deliver`, as mqemitter does), so all the copies of a message are handed before the
 * event loop runs a microtask. What was handed is remembered until then, and only then: which messages
 * were handed earlier says nothing about the next one. (aedes kept, per client, the highest counter
 * delivered and took any message numbered lower for a copy: a message numbered before another but
 * published after it, because it waited for the store, was dropped.)
 */

export class Copies {
  /** Broker counters of the messages handed since the last microtask checkpoint, by broker id. */
  private readonly handed = new Map<string, Set<number>>();
  private forgetting = false;
  private readonly forget = () => {
    this.handed.clear();
    this.forgetting = false;
  };

  /** Whether this is the first copy of the message handed to the client (false: another copy was). */
  first(brokerId: string, counter: number): boolean {
    let counters = this.handed.get(brokerId);
    if (!counters) this.handed.set(brokerId, (counters = new Set()));
    else if (counters.has(counter)) return false;
    counters.add(counter);
    if (!this.forgetting) {
      this.forgetting = true;
      queueMicrotask(this.forget);
    }
    return true;
  }
}
