/**
 * `ctx.call` inside the worker: calls leave through the host (which applies
 * the target's breaker and bulkhead) and their replies come back by id.
 */
import { PlinthError } from "../errors";
import type { Origin } from "../sdk/context";
import type { CallOptions } from "../sdk/define";
import type { HostMessage, WorkerMessage } from "./channel";

export class Calls {
  private next = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor(private readonly post: (message: WorkerMessage) => void) {}

  /** Within the handler's deadline and as its caller; a fallback answers instead of a failure. */
  readonly call = async <T>(target: string, params: unknown, options: CallOptions<T> | undefined, origin: Origin): Promise<T> => {
    const limit = options?.timeoutMs ? Date.now() + options.timeoutMs : Number.POSITIVE_INFINITY;
    try {
      return await new Promise<T>((resolve, reject) => {
        const id = this.next++;
        const deadline = Math.min(origin.deadline, limit);
        // Throws (PLT_BAD_REQUEST) for params that cannot cross: this call fails, before it waits.
        this.post({ t: "call", id, target, params, deadline: Number.isFinite(deadline) ? deadline : null, request: origin.request });
        this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      });
    } catch (err) {
      if (!options || !("fallback" in options)) throw err;
      const fallback = options.fallback;
      return typeof fallback === "function" ? await (fallback as (e: PlinthError) => T | Promise<T>)(err as PlinthError) : (fallback as T);
    }
  };

  reply(msg: Extract<HostMessage, { t: "reply" }>): void {
    const waiter = this.waiting.get(msg.id);
    if (!waiter) return;
    this.waiting.delete(msg.id);
    if (msg.ok) waiter.resolve(msg.value);
    else waiter.reject(PlinthError.fromWire(msg.error));
  }
}
