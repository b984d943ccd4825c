/**
 * What the worker runs for each kind of request: the plugin's handler, the
 * fields its `ctx` gets, the caller it acts for, and how its value becomes the
 * reply. Pure preparation: running it is the unit of work's job (unit.ts).
 */
import { PlinthError } from "../errors";
import type { Origin } from "../sdk/context";
import type { PluginDefinition } from "../sdk/define";
import { serviceOfSource, type CloudEvent, type Manifest } from "../protocol";
import type { HostMessage, HttpRequest, HttpResponse } from "./channel";
import { compile, validate, type Compiled, type Handler } from "./handlers";
import type { Inbox } from "./inbox";

export interface Prepared {
  fn: Handler;
  extra: object;
  /** Deadline and identity of the caller; calls made by the handler share them (default: none). */
  origin?: Origin;
  transaction: boolean;
  /** Turns the handler's return value into the reply (HTTP wraps it with status and headers). */
  finish?: (value: unknown) => unknown;
  /** The runtime's own writes for this unit (a subscription's cursor; a redriven letter's removal), committed with its events. */
  bookkeeping?: () => void;
}

const JSON_TYPE = "application/json;charset=utf-8";

/** A service event's place in its source's log, from its CloudEvent (`plinth/<service>`, `sequence`). */
export function durableOf(event: CloudEvent): { source: string; seq: number; generation?: string } | null {
  const seq = Number(event.sequence);
  const source = serviceOfSource(event.source);
  if (source === null || !Number.isInteger(seq)) return null;
  return typeof event.generation === "string" ? { source, seq, generation: event.generation } : { source, seq };
}

/** A loaded plugin's handlers, compiled once (schemas included), and what each request runs. */
export class Handlers {
  /** "METHOD /path" per route index, for logs. */
  readonly routeNames: string[];
  /** The MQTT filter of each subscription, by index. */
  readonly filters: string[];
  private readonly routes: Compiled[];
  private readonly actions: Map<string, Compiled>;
  private readonly subscriptions: Compiled[];

  constructor(
    private readonly service: string,
    plugin: PluginDefinition,
    manifest: Manifest,
    private readonly inbox: () => Inbox,
  ) {
    this.routes = Object.values(plugin.routes ?? {}).map(compile);
    this.routeNames = manifest.routes.map((r) => `${r.method} ${r.path}`);
    this.actions = new Map(Object.entries(plugin.actions ?? {}).map(([k, v]) => [k, compile(v)]));
    this.subscriptions = Object.values(plugin.subscribe ?? {}).map(compile);
    this.filters = manifest.subscriptions;
  }

  http(id: number, req: HttpRequest): Prepared {
    const route = this.routes[req.route];
    if (!route) throw new PlinthError("PLT_NOT_FOUND", "route not found");
    const set: { status?: number; headers: Record<string, string> } = { headers: {} };
    const extra = {
      body: validate("body", route.body, req.body),
      query: validate("query", route.query, req.search ? Object.fromEntries(new URLSearchParams(req.search)) : {}, true),
      params: validate("params", route.params, req.params, true),
      headers: req.headers,
      set,
    };
    // The body is encoded here, off the gateway's thread: the gateway hands the text to Response as it is.
    const finish = (body: unknown): HttpResponse => {
      const headers = set.headers;
      if (!Object.keys(headers).some((name) => name.toLowerCase() === "content-type")) headers["content-type"] = JSON_TYPE;
      // A BigInt or a cycle throws here, and a function or a Symbol encodes to nothing: either fails the request (500).
      const text = JSON.stringify(body ?? null) as string | undefined;
      if (text === undefined) throw new PlinthError("PLT_HANDLER_ERROR", `the handler returned a ${typeof body}, which JSON cannot carry`);
      return { status: set.status ?? (body === undefined ? 204 : 200), headers, body: text };
    };
    return { fn: route.handler, extra, finish, transaction: route.transaction, origin: { deadline: req.deadline ?? Infinity, identity: req.identity ?? null, request: id } };
  }

  action(msg: Extract<HostMessage, { t: "action" }>): Prepared {
    const action = this.actions.get(msg.action);
    if (!action) throw new PlinthError("PLT_ACTION_NOT_FOUND", `${this.service} has no action "${msg.action}"`);
    const params = validate("params", action.params, msg.params);
    const origin = { deadline: msg.deadline ?? Infinity, identity: msg.identity ?? null, request: msg.id };
    return { fn: action.handler, extra: { params, caller: msg.caller }, transaction: action.transaction, origin };
  }

  /**
   * A subscription handler for one event. Service events are handled once in effect: an event
   * the cursor has passed is skipped, and the cursor moves in the transaction that commits the
   * handler's events (see UnitOptions.bookkeeping).
   */
  event(index: number, topic: string, event: CloudEvent, checkCursor: boolean): Prepared {
    const sub = this.subscriptions[index];
    const filter = this.filters[index];
    if (!sub || filter === undefined) throw new PlinthError("PLT_INTERNAL", `unknown subscription ${index}`);
    const durable = durableOf(event);
    const extra = { event, topic };
    if (!durable) return { fn: sub.handler, extra, transaction: sub.transaction };
    const inbox = this.inbox();
    if (checkCursor && inbox.handled(filter, durable.source, durable.seq, durable.generation)) return { fn: () => ({ skipped: true }), extra, transaction: true };
    return { fn: sub.handler, extra, transaction: sub.transaction, bookkeeping: () => inbox.advance(filter, durable.source, durable.seq, durable.generation) };
  }

  /** A dead letter's subscription handler again; on success the letter is forgotten. */
  redrive(letterId: number): Prepared {
    const inbox = this.inbox();
    const letter = inbox.deadLetter(letterId);
    if (!letter) throw new PlinthError("PLT_NOT_FOUND", `no dead letter ${letterId}`);
    const index = this.filters.indexOf(letter.subscription);
    if (index < 0) throw new PlinthError("PLT_NOT_FOUND", `subscription ${letter.subscription} no longer exists`);
    const prepared = this.event(index, letter.topic, letter.event, false);
    const advance = prepared.bookkeeping;
    return {
      ...prepared,
      bookkeeping: () => {
        advance?.();
        inbox.forget(letter.id);
      },
    };
  }
}
