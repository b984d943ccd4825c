/** createContext (runtime/sdk/context.ts): what a handler's ctx holds, emit's checks and record, call carrying its origin. */
import { Database } from "bun:sqlite";
import { describe, expect, test } from "bun:test";
import { createContext, type ContextBase, type Origin, type Scope } from "../../../runtime/sdk/context";
import { createLogger } from "../../../runtime/log";
import { PlinthError } from "../../../runtime/errors";
import type { EmitRequest } from "../../../runtime/protocol";

function setup(origin: Origin = { deadline: 1_000, identity: { sub: "ann", roles: ["admin"], via: "key" }, request: 7 }) {
  const emitted: EmitRequest[] = [];
  const calls: unknown[][] = [];
  const db = new Database(":memory:");
  const base: ContextBase = {
    service: "orders",
    db,
    log: createLogger({ level: "silent" }),
    config: { currency: "EUR" },
    call: async (...args) => {
      calls.push(args);
      return "answer" as never;
    },
  };
  const scope: Scope = { emit: (e) => void emitted.push(e), tx: (fn) => fn() };
  const ctx = createContext(base, { params: { id: 1 } }, scope, origin);
  return { ctx, base, scope, emitted, calls, db, origin };
}

describe("createContext", () => {
  test("holds the base, the handler's own fields, the origin's identity, and the scope's tx", () => {
    const { ctx, base, scope, db } = setup();
    expect(ctx.service).toBe("orders");
    expect(ctx.db).toBe(db);
    expect(ctx.config).toEqual({ currency: "EUR" });
    expect(ctx.log).toBe(base.log);
    expect(ctx.params).toEqual({ id: 1 });
    expect(ctx.identity).toEqual({ sub: "ann", roles: ["admin"], via: "key" });
    expect(ctx.tx).toBe(scope.tx);
  });

  test("anonymous: identity null", () => {
    expect(setup({ deadline: Infinity, identity: null, request: null }).ctx.identity).toBeNull();
  });

  test("call goes through the base with the handler's origin (deadline, identity, request)", async () => {
    const { ctx, calls, origin } = setup();
    expect(await ctx.call("stock.reserve", { sku: "a" }, { timeoutMs: 50 })).toBe("answer");
    await ctx.call("stock.list");
    expect(calls).toEqual([
      ["stock.reserve", { sku: "a" }, { timeoutMs: 50 }, origin],
      ["stock.list", undefined, undefined, origin],
    ]);
  });
});

describe("emit", () => {
  test("records an event with a fresh UUIDv7 id, the time now, the type and the data", () => {
    const { ctx, emitted } = setup();
    const before = Date.now();
    ctx.emit("created", { id: 1 });
    ctx.emit("shipped/eu.west", [1, 2]);
    expect(emitted.map((e) => [e.type, e.data])).toEqual([
      ["created", { id: 1 }],
      ["shipped/eu.west", [1, 2]],
    ]);
    for (const e of emitted) {
      expect(e.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(Date.parse(e.time)).toBeGreaterThanOrEqual(before);
      expect(e.time).toBe(new Date(e.time).toISOString());
    }
    expect(emitted[0]!.id < emitted[1]!.id).toBe(true); // v7: in the order emitted
  });

  test("no data, or undefined, is null; falsy data is kept", () => {
    const { ctx, emitted } = setup();
    ctx.emit("a");
    ctx.emit("b", undefined);
    ctx.emit("c", 0);
    ctx.emit("d", false);
    ctx.emit("e", "");
    expect(emitted.map((e) => e.data)).toEqual([null, null, 0, false, ""]);
  });

  test("an invalid type is PLT_EVENT_INVALID quoting it, and nothing is recorded", () => {
    const { ctx, emitted } = setup();
    for (const type of ["", "a b", "a/", "/a", "a//b", "a/../b", "..", "#", "+", "a/+", "x".repeat(257), 42 as unknown as string]) {
      let caught: unknown;
      try {
        ctx.emit(type, {});
      } catch (err) {
        caught = err;
      }
      expect(caught, String(type)).toBeInstanceOf(PlinthError);
      expect((caught as PlinthError).code).toBe("PLT_EVENT_INVALID");
      expect((caught as PlinthError).message).toBe(`emit: invalid event type ${JSON.stringify(type)} (letters, digits, '_', '.', '-', levels split by '/')`);
    }
    expect(emitted).toEqual([]);
  });
});
