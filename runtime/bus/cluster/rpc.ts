/**
 * Requests to services on other nodes, over the cluster's broker. A request is published on
 * `<prefix>/rpc/<node>`; the node hands it to the service's worker and publishes the answer on
 * `<prefix>/rpc/<caller>/reply`, each message a JSON array of requests or of answers. A request to a node
 * with nothing else on its way there, or an answer to a node with nothing else being served for it, goes
 * at once; otherwise (under load) it waits for the end of the turn and goes with the others of the turn
 * to the same node: one MQTT publish for many requests. Both at QoS 0, as Moleculer's transporters do: over one TCP connection
 * each they are lost only with the connection, and then the request times out or its node is declared
 * gone, as a QoS 1 one would whose node died. Besides route requests and action calls, a node answers
 * reads of the event logs of the services it hosts (`t: "log"`), for other nodes' subscribers. QoS 1 cost 44 ms a round trip through mosquitto: it sends
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

/** A read of a service's event log on the node that hosts it (loader/follower.ts). */
export interface LogRead {
  t: "log";
  after: number;
  limit: number;
}

interface RpcRequest {
  id: number;
  from: string;
  service: string;
  message: HostRequest | LogRead;
  timeoutMs: number;
}

type RpcReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: WireError };

/** Hands a request from another node to the service here; rejects with a PlinthError. */
export type Serve = (service: string, message: HostRequest | LogRead, timeoutMs: number) => Promise<unknown>;

const NODE = /^[A-Za-z0-9_-]{1,64}$/;

export class ClusterRpc {
  private bus: Bus | null = null;
  /** Requests in flight, and the node each was sent to. */
  private readonly pending = new PendingRequests(() => "a service on another node");
  private readonly asked = new Map<number, string>();
  /** Requests and answers of this turn, by topic: sent together at its end. */
  private readonly outgoing = new Map<string, Array<RpcRequest | RpcReply>>();
  private flushing = false;
  /** Requests being served here, per node that asked; requests asked and not answered, per node asked. */
  private readonly serving = new Map<string, number>();
  private readonly onItsWay = new Map<string, number>();

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
  request(node: string, service: string, message: HostRequest | LogRead, timeoutMs: number, report?: (err?: PlinthError) => void): Promise<unknown> {
    const bus = this.bus;
    if (!bus) {
      const err = new PlinthError("PLT_SERVICE_UNAVAILABLE", `${service} on node "${node}": not connected to the cluster yet`);
      report?.(err);
      return Promise.reject(err);
    }
    const { id, answer } = this.pending.open(timeoutMs, undefined, report);
    this.asked.set(id, node);
    const onItsWay = (this.onItsWay.get(node) ?? 0) + 1;
    this.onItsWay.set(node, onItsWay);
    const done = () => {
      this.asked.delete(id);
      const left = this.onItsWay.get(node)! - 1;
      if (left === 0) this.onItsWay.delete(node);
      else this.onItsWay.set(node, left);
    };
    answer.then(done, done);
    this.send(this.topic(node), { id, from: this.config.node, service, message, timeoutMs }, onItsWay > 1);
    return answer;
  }

  /** Sends a request or an answer: at once, or (`batch`) with the others of this turn to the same topic. */
  private send(topic: string, item: RpcRequest | RpcReply, batch: boolean): void {
    const queued = this.outgoing.get(topic);
    if (!batch && !queued) {
      this.publish(topic, [item]);
      return;
    }
    if (queued) queued.push(item);
    else this.outgoing.set(topic, [item]);
    if (this.flushing) return;
    this.flushing = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushing = false;
    for (const [topic, items] of this.outgoing) this.publish(topic, items);
    this.outgoing.clear();
  }

  private publish(topic: string, items: Array<RpcRequest | RpcReply>): void {
    // Requests that cannot leave fail now (answers that cannot leave time out at their caller).
    const failed = (error: PlinthError) => {
      for (const item of items) if ("service" in item) this.pending.settle(item.id, { ok: false, error });
    };
    let text: string;
    try {
      text = JSON.stringify(items);
    } catch (err) {
      // Everything here crossed threads as JSON already; a value that still cannot is this batch's failure alone.
      return failed(new PlinthError("PLT_BAD_REQUEST", `a request to another node cannot be sent: ${(err as Error).message}`));
    }
    this.bus!.publish(topic, text, { qos: 0 }).catch((err: Error) => failed(new PlinthError("PLT_SERVICE_UNAVAILABLE", `another node cannot be reached: ${err.message}`)));
  }

  /** `node` left the cluster: what was asked of it fails now (retryable: another instance may serve it). */
  gone(node: string): void {
    for (const [id, to] of this.asked) {
      if (to === node) this.pending.settle(id, { ok: false, error: new PlinthError("PLT_SERVICE_UNAVAILABLE", `node "${node}" left the cluster before answering`) });
    }
  }

  /** The JSON list a message carries, or null (logged) when it carries none. */
  private list(payload: Buffer, what: string): unknown[] | null {
    try {
      const list = JSON.parse(payload.toString()) as unknown;
      if (Array.isArray(list)) return list;
      throw new Error(`not a list of ${what}`);
    } catch (err) {
      this.log.warn(`unreadable ${what} from the cluster`, { error: (err as Error).message });
      return null;
    }
  }

  private received(payload: Buffer, serve: Serve): void {
    for (const request of (this.list(payload, "requests") ?? []) as RpcRequest[]) {
      const problem = requestProblem(request);
      if (problem) {
        this.log.warn("unreadable request from the cluster", { error: problem });
        continue;
      }
      const from = request.from;
      this.serving.set(from, (this.serving.get(from) ?? 0) + 1);
      const reply = (answer: RpcReply) => {
        const left = this.serving.get(from)! - 1;
        if (left === 0) this.serving.delete(from);
        else this.serving.set(from, left);
        this.send(`${this.topic(from)}/reply`, answer, left > 0);
      };
      serve(request.service, request.message, Math.max(1, request.timeoutMs)).then(
        (value) => reply({ id: request.id, ok: true, value }),
        (err: unknown) => {
          // Another node's client gets what a client here would: a PlinthError as it is, anything else generic.
          if (!(err instanceof PlinthError)) this.log.warn("serving a request from the cluster failed", { service: request.service, error: err instanceof Error ? err.message : String(err) });
          reply({ id: request.id, ok: false, error: (err instanceof PlinthError ? err : new PlinthError("PLT_INTERNAL", "internal error")).toWire() });
        },
      );
    }
  }

  private answered(payload: Buffer): void {
    for (const reply of (this.list(payload, "answers") ?? []) as RpcReply[]) {
      const ok = typeof reply === "object" && reply !== null && Number.isSafeInteger(reply.id) && typeof reply.ok === "boolean";
      if (!ok || (!reply.ok && (typeof reply.error?.code !== "string" || typeof reply.error.message !== "string"))) {
        this.log.warn("unreadable answer from the cluster", { error: "not an answer" });
        continue;
      }
      // An answer after its request timed out (or its node was declared gone) settles nothing.
      this.pending.settle(reply.id, reply.ok ? { ok: true, value: reply.value } : { ok: false, error: PlinthError.fromWire(reply.error) });
    }
  }
}

/** Why `request` (from another node, untrusted) is not one a dispatcher sends, or null when it is. */
function requestProblem(request: RpcRequest): string | null {
  if (typeof request !== "object" || request === null) return "not a request";
  if (!Number.isSafeInteger(request.id) || typeof request.from !== "string" || !NODE.test(request.from) || typeof request.service !== "string") return "not a request";
  if (typeof request.message !== "object" || request.message === null || !Number.isFinite(request.timeoutMs)) return "not a request";
  const message = request.message;
  if (message.t === "log") return Number.isSafeInteger(message.after) && Number.isSafeInteger(message.limit) && message.limit > 0 ? null : "not a log read";
  // A route's request or an action's call, nothing of the worker's own business.
  if (message.t !== "http" && message.t !== "action") return `not a request (${String((message as { t?: unknown }).t)})`;
  return null;
}
