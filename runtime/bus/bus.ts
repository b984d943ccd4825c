/**
 * The Bus: the runtime's own publish and subscribe, and where plugins' committed events are
 * published. The loader and the platform talk to it, never to a broker: behind it sits the
 * embedded broker (local.ts, on aedes) today, and an outside MQTT broker in cluster mode.
 */
import type { LogGeneration } from "../storage/generation";

export type BusHandler = (topic: string, payload: Buffer) => void;

export interface Bus {
  publish(topic: string, payload: string | Buffer, options?: { qos?: 0 | 1; retain?: boolean }): Promise<void>;
  /** Removes every retained message on topics matching `filter` (e.g. state left by a previous run). */
  clearRetained(filter: string): Promise<number>;
  /** Subscribes an in-process handler to an MQTT topic filter; returns the unsubscribe function. */
  subscribe(filter: string, handler: BusHandler): Promise<() => Promise<void>>;
  /**
   * Publishes what a plugin's worker commits, as it arrives on `port` (its events port, see
   * runtime/worker/channel.ts), on `service`'s own topics as CloudEvents of `generation`, and
   * answers each batch with what the broker took. Returns the function that stops serving the port.
   */
  serveEvents(port: MessagePort, service: string, generation: LogGeneration | null): () => void;
  /**
   * Hears the broker come back after it was lost (its thread restarted, or the connection to an outside
   * broker). Subscriptions are kept; events ports served before were lost with it and must be served again.
   */
  onReconnect(listener: () => void): void;
}
