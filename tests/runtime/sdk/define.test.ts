/**
 * definePlugin, route and action (runtime/sdk/define.ts): identity functions that type a plugin as
 * written. At run time each returns the very object it was given (the worker validates that object:
 * tests/runtime/sdk/manifest.test.ts); the types are checked by tsc on the lines marked below.
 */
import { describe, expect, test } from "bun:test";
import { Type as t } from "@sinclair/typebox";
import { action, definePlugin, route } from "../../../runtime/sdk/define";
import * as sdk from "../../../runtime/sdk/index";

describe("definePlugin, route, action", () => {
  test("return the object given, not a copy, unchanged", () => {
    const plugin = { name: "orders", version: "1.0.0", routes: { "GET /": () => [] } };
    const frozen = Object.freeze({ ...plugin });
    expect(definePlugin(plugin)).toBe(plugin);
    expect(definePlugin(frozen)).toBe(frozen);
    expect(Object.keys(plugin)).toEqual(["name", "version", "routes"]);
    const spec = { body: t.Object({ title: t.String() }), handler: () => 1 };
    expect(route(spec)).toBe(spec);
    const act = { idempotent: true, handler: () => 2 };
    expect(action(act)).toBe(act);
  });

  test("are what the SDK exports to plugin authors", () => {
    expect(sdk.definePlugin).toBe(definePlugin);
    expect(sdk.route).toBe(route);
    expect(sdk.action).toBe(action);
  });

  test("types: a route's body, query and params come from its schemas; a wrong plugin does not compile", () => {
    const r = route({
      body: t.Object({ title: t.String(), qty: t.Integer() }),
      params: t.Object({ id: t.String() }),
      handler(ctx) {
        const title: string = ctx.body.title;
        const qty: number = ctx.body.qty;
        const id: string = ctx.params.id;
        // @ts-expect-error: not in the body schema
        void ctx.body.missing;
        // @ts-expect-error: a number is not a string
        const wrong: string = ctx.body.qty;
        return { title, qty, id, wrong };
      },
    });
    const a = action({
      params: t.Object({ sku: t.String() }),
      handler: (ctx) => ctx.params.sku.toUpperCase(),
    });
    const p = definePlugin({ name: "typed", version: "1.0.0", routes: { "POST /": r }, actions: { reserve: a } });
    expect(p.name).toBe("typed"); // `const` type parameter: the literal is kept
    const literal: "typed" = p.name;
    expect(literal).toBe("typed");
    // @ts-expect-error: version is required
    definePlugin({ name: "no-version" });
    // @ts-expect-error: routes map to specs or handlers, not strings
    definePlugin({ name: "x", version: "1.0.0", routes: { "GET /": "nope" } });
  });
});
