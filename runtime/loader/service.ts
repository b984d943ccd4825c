/** What the loader knows about one running service, and the shapes it reports. */
import type Memoirist from "memoirist";
import type { WireError } from "../errors";
import type { WorkerHost } from "../worker/host";
import type { Delivery } from "./delivery";

export interface Service {
  readonly name: string;
  readonly origin: string;
  /** The entry file of a plugin from the plugins folder (null for built-ins). */
  readonly path: string | null;
  readonly host: WorkerHost;
  router: Memoirist<number>;
  unsubscribe: Array<() => Promise<void>>;
  /** Stops the bus serving the events port of its current worker (null: none served). */
  events: (() => void) | null;
  /** One durable delivery per subscription, for service events. */
  deliveries: Delivery[];
  /** Being replaced or retired: its deliveries stay paused, even if its worker restarts. */
  quiesced: boolean;
}

export interface LoadFailure {
  origin: string;
  error: WireError;
}

export interface RouteMatch {
  service: Service;
  route: number;
  params: Record<string, string>;
}
