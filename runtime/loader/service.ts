/** What the loader knows about one running service, and the shapes it reports. */
import type Memoirist from "memoirist";
import type { WireError } from "../errors";
import type { Manifest } from "../protocol";
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

/** A service another node of the cluster hosts, as its presence announced it. */
export interface RemoteService {
  readonly name: string;
  readonly node: string;
  readonly host: { readonly manifest: Manifest; readonly storage: null };
}

/** Where a request can go: a service here, or one on another node. */
export type Instance = Service | RemoteService;

export interface LoadFailure {
  origin: string;
  error: WireError;
}

export interface RouteMatch {
  service: Instance;
  route: number;
  params: Record<string, string>;
}
