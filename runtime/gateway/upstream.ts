/**
 * What the gateway needs of the services behind it (the loader, in the platform): find a route,
 * hand it a request, say how every service is doing, and hear committed events. Tests hand the
 * gateway a fake one and call `app.fetch` without a socket or a worker.
 */
import type { PlinthError } from "../errors";
import type { NodeDescription } from "../loader/node";
import type { CommittedEvent, Manifest } from "../protocol";
import type { StorageState } from "../storage/faults";
import type { HttpRequest, HttpResponse } from "../worker/channel";

/** A running service as the gateway sees it. Its identity (the object) names one loaded version. */
export interface UpstreamService {
  readonly name: string;
  readonly host: {
    /** The routes its plugin declared; null until it is ready. */
    readonly manifest: Manifest | null;
    /** Its storage fault, if any (for /health). */
    readonly storage: StorageState | null;
  };
}

/** A route of a service, matched: `route` indexes its manifest's routes. */
export interface UpstreamMatch {
  service: UpstreamService;
  route: number;
  params: Record<string, string>;
}

export interface Upstream {
  readonly services: ReadonlyMap<string, UpstreamService>;
  /** Whether a service can take a request now (its bulkhead and breaker): the refusal, or null. */
  readonly breakers: { admits(service: string): PlinthError | null };
  /** The route of `METHOD /api/<service><path>`; PLT_SERVICE_NOT_FOUND or PLT_NOT_FOUND when there is none. */
  match(service: string, method: string, path: string): UpstreamMatch;
  /** The service's answer to a request on a matched route. */
  http(match: UpstreamMatch, req: Omit<HttpRequest, "route" | "params">, timeoutMs: number): Promise<HttpResponse>;
  /** Hears each service's committed events before the reply of the request that committed them. */
  onCommit(listener: (service: string, events: readonly CommittedEvent[]) => void): void;
  /** Every service's state, and the plugins that failed to load (what /health reports). */
  describe(): {
    services: ReadonlyArray<{ name: string; state: string; version?: string; breaker: string }>;
    failed: NodeDescription["failed"];
  };
}
