/**
 * Requests to services on other nodes, over the cluster's broker. A request is published on
 * `<prefix>/rpc/<node>`; the node hands it to the service's worker and publishes the answer on
 * `<prefix>/rpc/<caller>/reply`. Both at QoS 0, as Moleculer's transporters do: over one TCP connection
 * each they are lost only with the connection, and then the request times out or its node is declared
 * gone, as a QoS 1 one would whose node died. QoS 1 cost 44 ms a round trip through mosquitto: it sends
 * a PUBACK and the next PUBLISH as two small writes with Nagle's algorithm on (its default), and the
 * second waits for the client's delayed ACK. Each node subscribes to its own two topics. A request not answered
 * within its time fails with PLT_TIMEOUT; what was asked of a node that is gone (its presence says so)
 * fails at once with a retryable 503, not at its deadline. What arrives is read as untrusted: a message
 * that is not a request or an answer is dropped and logged.
 */
import { PlinthError, type WireError } from "../../errors";
import type { Logger } from "../../log";
import type { HostRequest } from "../../worker/host";
import { PendingRequests } from "../../worker/pending";
import type { Bus } from "../bus";
import type { ClusterConfig } from "./bus";

interface RpcRequest {
  id: number;
  from: string;
  service: string;
  message: HostRequest;
  timeoutMs: number;
}

type RpcReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: WireError };

/** Hands a request from another node to the service here; rejects with a PlinthError. */
export type Serve = (service: string, message: HostRequest, timeoutMs: number) => Promise<unknown>;

const NODE = /^[A-Za-z0-9_-]{1,64}$/;

export class ClusterRpc {
  private bus: Bus | null = null;
  /** Requests in flight, and the node each was sent to. */
  private readonly pending = new PendingRequests(() => "a service on another node");
  private readonly asked = new Map<number, string>();

  constructor(
    private readonly config: ClusterConfig,
    private readonly log: Pick<Logger, "warn">,
  ) {}

  private topic(node: string): string {
    return `${this.config.prefix}/rpc/${node}`;
  }

  /** Serves requests to this node with `serve`, and hears the answers to its own. */
  async start(bus: Bus, serve: Serve): Promise<void> {
    await bus.subscribe(this.topic(this.config.node), (_topic, payload) => this.received(payload, serve));
    await bus.subscribe(`${this.topic(this.config.node)}/reply`, (_topic, payload) => this.answered(payload));
    this.bus = bus;
  }

  /** Asks `service` on `node`; `report` is told how it ended (for the caller's breaker). */
  request(node: string, service: string, message: HostRequest, timeoutMs: number, report?: (err?: PlinthError) => void): Promise<unknown> {
    const bus = this.bus;
    if (!bus) {
      const err = new PlinthError("PLT_SERVICE_UNAVAILABLE", `${service} on node "${node}": not connected to the cluster yet`);
      report?.(err);
      return Promise.reject(err);
    }
    const { id, answer } = this.pending.open(timeoutMs, undefined, report);
    this.asked.set(id, node);
    const done = () => this.asked.delete(id);
    answer.then(done, done);
    const request: RpcRequest = { id, from: this.config.node, service, message, timeoutMs };
    bus.publish(this.topic(node), JSON.stringify(request), { qos: 0 }).catch((err: Error) => {
      this.pending.settle(id, { ok: false, error: new PlinthError("PLT_SERVICE_UNAVAILABLE", `${service} on node "${node}": ${err.message}`) });
    });
    return answer;
  }

  /** `node` left the cluster: what was asked of it fails now (retryable: another instance may serve it). */
  gone(node: string): void {
    for (const [id, to] of this.asked) {
      if (to === node) this.pending.settle(id, { ok: false, error: new PlinthError("PLT_SERVICE_UNAVAILABLE", `node "${node}" left the cluster before answering`) });
    }
  }

  private received(payload: Buffer, serve: Serve): void {
    let request: RpcRequest;
    try {
      request = JSON.parse(payload.toString()) as RpcRequest;
      if (!Number.isSafeInteger(request.id) || typeof request.from !== "string" || !NODE.test(request.from) || typeof request.service !== "string") throw new Error("not a request");
      if (typeof request.message !== "object" || request.message === null || !Number.isFinite(request.timeoutMs)) throw new Error("not a request");
      // What a dispatcher sends: a route's request or an action's call, nothing of the worker's own business.
      if (request.message.t !== "http" && request.message.t !== "action") throw new Error(`not a request (${String(request.message.t)})`);
    } catch (err) {
      this.log.warn("unreadable request from the cluster", { error: (err as Error).message });
      return;
    }
    const reply = (answer: RpcReply) => this.bus?.publish(`${this.topic(request.from)}/reply`, JSON.stringify(answer), { qos: 0 }).catch(() => {});
    serve(request.service, request.message, Math.max(1, request.timeoutMs)).then(
      (value) => reply({ id: request.id, ok: true, value }),
      (err: unknown) => reply({ id: request.id, ok: false, error: PlinthError.from(err, "PLT_INTERNAL").toWire() }),
    );
  }

  private answered(payload: Buffer): void {
    let reply: RpcReply;
    try {
      reply = JSON.parse(payload.toString()) as RpcReply;
      if (!Number.isSafeInteger(reply.id) || typeof reply.ok !== "boolean") throw new Error("not an answer");
      if (!reply.ok && (typeof reply.error?.code !== "string" || typeof reply.error.message !== "string")) throw new Error("not an error");
    } catch (err) {
      this.log.warn("unreadable answer from the cluster", { error: (err as Error).message });
      return;
    }
    // An answer after its request timed out (or its node was declared gone) settles nothing.
    this.pending.settle(reply.id, reply.ok ? { ok: true, value: reply.value } : { ok: false, error: PlinthError.fromWire(reply.error) });
  }
}
