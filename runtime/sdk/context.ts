/**
 * Builds the `ctx` handed to plugin handlers. The transport (how `call`
 * reaches other services) is injected by the worker entry.
 */
import type { Database } from "bun:sqlite";
import { PlinthError } from "../errors";
import type { Logger } from "../log";
import { isValidEventType, type EmitRequest, type Identity } from "../protocol";

/** Where a handler's events and transactions go (the worker's unit of work). */
export interface Scope {
  emit(event: EmitRequest): void;
  tx<T>(fn: () => T): T;
}
import type { CallOptions, Context } from "./define";

export interface ContextBase {
  service: string;
  db: Database;
  log: Logger;
  config: Readonly<Record<string, unknown>>;
  /** Made on behalf of `origin`: the call never outlives its deadline and carries its identity. */
  call: <T = unknown>(target: string, params: unknown, options: CallOptions<T> | undefined, origin: Origin) => Promise<T>;
}

/** What a handler inherits from whoever started it, and hands on to the calls it makes. */
export interface Origin {
  /** Absolute (Date.now() ms); Infinity when nobody waits. */
  deadline: number;
  identity: Identity | null;
  /** The host's id of the request being handled: calls name it, and the host takes their caller from it. */
  request: number | null;
}

/** A handler's context: the shared base, the handler's own fields, and `emit`/`tx` bound to its unit of work. */
export function createContext<X extends object>(base: ContextBase, extra: X, scope: Scope, origin: Origin): Context & X {
  const emit = (type: string, data?: unknown) => {
    if (!isValidEventType(type)) {
      throw new PlinthError("PLT_EVENT_INVALID", `emit: invalid event type ${JSON.stringify(type)} (letters, digits, '_', '.', '-', levels split by '/')`);
    }
    scope.emit({ id: Bun.randomUUIDv7(), type, time: new Date().toISOString(), data: data ?? null });
  };
  const call = <T>(target: string, params?: unknown, options?: CallOptions<T>) => base.call<T>(target, params, options, origin);
  return { ...base, ...extra, identity: origin.identity, call, emit, tx: scope.tx };
}
