/**
 * Where committed events go on this node: to the commit listeners (the gateway's cache) and the
 * durable deliveries of subscribing services as each commit's result arrives; from each service's
 * worker to the bus on an events port of its own; and MQTT messages outside the services' namespace
 * to the services that subscribed. Subscribers catch up from an EventLogSource.
 */
import type { Config } from "../../config/schema";
import type { Bus } from "../bus/bus";
import type { Logger } from "../log";
import { Topics, type CommittedEvent, type Manifest } from "../protocol";
import type { PlinthError } from "../errors";
import type { WorkerHost } from "../worker/host";
import { Delivery } from "./delivery";
import { toCloudEvent } from "./events";
import type { EventLogSource } from "./logs";
import type { Registry } from "./registry";
import type { Service } from "./service";

export type CommitListener = (service: string, events: readonly CommittedEvent[]) => void;

export class EventRouter {
  private readonly commitListeners: CommitListener[] = [];
  /** The broker's bus, from attach() on. */
  private bus: Bus | null = null;

  constructor(
    private readonly registry: Registry,
    private readonly logs: EventLogSource,
    private readonly config: Readonly<Config>,
    private readonly log: Logger,
  ) {}

  /** From now on events are published on `bus`; a broker that was lost took the events ports with it. */
  attach(bus: Bus): void {
    this.bus = bus;
    // Each service publishes on a new port, what it had not had acknowledged first.
    bus.onReconnect(() => {
      for (const service of this.registry.services.values()) this.serveEvents(service, true);
    });
  }

  /**
   * Hears every service's committed events synchronously, as they reach the host: before the
   * reply of the handler that committed them is answered (the gateway cache relies on this).
   */
  onCommit(listener: CommitListener): void {
    this.commitListeners.push(listener);
  }

  /** A service's committed events, as its worker's result brought them. */
  committed(from: string, events: CommittedEvent[]): void {
    for (const listener of this.commitListeners) listener(from, events);
    for (const s of this.registry.services.values()) for (const d of s.deliveries) d.offer(from, events);
  }

  /** A worker opened its log: a new generation (the log went back) rebases the subscribers past it. */
  logOpened(service: string): void {
    const generation = this.logs.refresh(service);
    if (generation) for (const s of this.registry.services.values()) for (const d of s.deliveries) d.rebase(service, generation);
  }

  /** One durable delivery per subscription of the plugin. */
  deliveries(host: WorkerHost, manifest: Manifest): Delivery[] {
    const options = { maxAttempts: this.config.events.maxAttempts, retryDelayMs: this.config.events.retryDelayMs, timeoutMs: this.config.calls.timeoutMs };
    return manifest.subscriptions.map((filter, index) => new Delivery(host, index, filter, this.logs, options, this.log));
  }

  /** Subscribes the service's filters on the bus (what it unsubscribes with is kept on the service). */
  async subscribe(service: Service, manifest: Manifest): Promise<void> {
    for (const [index, filter] of manifest.subscriptions.entries()) {
      service.unsubscribe.push(await this.bus!.subscribe(filter, (topic, payload) => this.deliver(service, index, topic, payload)));
    }
  }

  /** Has the bus publish what the service's current worker commits, from a new events port. */
  serveEvents(service: Service, relay: boolean): void {
    service.events?.();
    const port = service.host.eventsPort(relay);
    service.events = port && this.bus!.serveEvents(port, service.name, this.logs.generation(service.name));
  }

  /** Starts (or restarts) a service's deliveries from the cursors its database reported. */
  resume(service: Service): void {
    for (const delivery of service.deliveries) {
      const cursors = new Map(service.host.cursors.filter((c) => c.subscription === delivery.filter).map((c) => [c.source, c]));
      delivery.resume(cursors, this.registry.services.keys());
    }
  }

  /** Stops a service's event deliveries and MQTT subscriptions (idempotent). */
  async quiesce(service: Service): Promise<void> {
    service.quiesced = true;
    for (const d of service.deliveries) d.pause();
    const unsubscribe = service.unsubscribe.splice(0);
    await Promise.all(unsubscribe.map((u) => u()));
  }

  /** MQTT messages outside the services' namespace (devices, other programs): best effort. */
  private deliver(service: Service, subscription: number, topic: string, payload: Buffer): void {
    if (topic.startsWith(`${Topics.eventsRoot}/`)) return; // service events arrive through the durable deliveries
    const event = toCloudEvent(topic, payload);
    service.host
      .request({ t: "event", subscription, topic, event }, this.config.calls.timeoutMs)
      .catch((err: PlinthError) => this.log.warn("event handler failed", { service: service.name, topic, id: event.id, error: err.message }));
  }
}
