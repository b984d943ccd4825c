/**
 * Durable delivery of events from services that only other nodes host (a cluster). Each such source's
 * log is read over the cluster, from a node that hosts it, from where the slowest subscription here
 * stands in it, and offered to the subscriptions in commit order: nothing is lost when the broker drops
 * a message or this node was down, and a source that is down is read again when it is back. It is read
 * when its events pass on the bus (a wake-up, not the events themselves) and every `POLL_MS`.
 *
 * One instance per source service: two nodes hosting the same service keep separate logs, which a
 * subscription cannot tell apart yet.
 */
import type { Logger } from "../log";
import { Topics, type CommittedEvent } from "../protocol";
import type { RemoteRequests } from "./dispatcher";
import type { Registry } from "./registry";

/** Events read from another node's log per request. */
export const READ_LIMIT = 500;
/** How often every remote source is read, whatever the bus said. */
const POLL_MS = 1_000;

export class RemoteFollower {
  private timer: Timer | null = null;
  private readonly reading = new Set<string>();
  private readonly again = new Set<string>();

  constructor(
    private readonly registry: Registry,
    private readonly remote: RemoteRequests,
    private readonly timeoutMs: number,
    private readonly log: Pick<Logger, "warn">,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      for (const source of this.registry.remoteSources()) this.wake(source);
    }, POLL_MS);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** An event of `topic` passed on the bus: its source may have more to read. */
  heard(topic: string): void {
    if (!topic.startsWith(`${Topics.eventsRoot}/`)) return;
    const end = topic.indexOf("/", Topics.eventsRoot.length + 1);
    const source = topic.slice(Topics.eventsRoot.length + 1, end < 0 ? undefined : end);
    if (!this.registry.services.has(source)) this.wake(source);
  }

  /** Reads `source`'s log on (once at a time; a wake-up meanwhile reads again after). */
  wake(source: string): void {
    if (this.reading.has(source)) {
      this.again.add(source);
      return;
    }
    this.reading.add(source);
    void this.read(source).finally(() => {
      this.reading.delete(source);
      if (this.again.delete(source)) this.wake(source);
    });
  }

  private async read(source: string): Promise<void> {
    for (;;) {
      const deliveries = [...this.registry.services.values()].flatMap((s) => s.deliveries).filter((d) => couldMatch(d.filter, source));
      const positions = deliveries.map((d) => d.position(source)).filter((p): p is number => p !== null);
      if (positions.length === 0) return;
      const instance = this.registry.instance(source);
      if (!instance || !("node" in instance)) return;
      let events: CommittedEvent[];
      try {
        events = (await this.remote.request(instance.node, source, { t: "log", after: Math.min(...positions), limit: READ_LIMIT }, this.timeoutMs)) as CommittedEvent[];
      } catch (err) {
        // The source's node is down or slow: read again at the next wake-up or poll.
        this.log.warn("cannot read another node's event log yet", { source, node: instance.node, error: (err as Error).message });
        return;
      }
      if (!Array.isArray(events) || events.length === 0) return;
      for (const d of deliveries) d.offer(source, events);
      if (events.length < READ_LIMIT) return;
    }
  }
}

/** Whether a subscription's filter can match some event of `source` (`events/<source>/...`). */
function couldMatch(filter: string, source: string): boolean {
  const [root, service] = filter.split("/");
  if (root === "#") return true;
  if (root !== Topics.eventsRoot && root !== "+") return false;
  return service === undefined || service === "#" || service === "+" || service === source;
}
