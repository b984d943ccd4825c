import { describe, expect, test } from "bun:test";
import { PlinthError } from "../../../runtime/errors";
import { parseRouteKey, validatePlugin } from "../../../runtime/sdk/manifest";

const handler = () => ({ ok: true });

function validPlugin(): Record<string, unknown> {
  return {
    name: "orders",
    version: "1.2.3",
    description: "Takes orders",
    needs: ["inventory", "payments"],
    migrations: ["CREATE TABLE orders (id TEXT PRIMARY KEY)"],
    routes: {
      "GET /": handler,
      "POST /orders/": { handler },
      "GET /orders/:id": handler,
      "DELETE /orders/:id": { handler },
    },
    actions: {
      get: handler,
      "stock.reserve": { handler },
    },
    subscribe: {
      "events/inventory/#": handler,
      "events/+/created": { handler },
    },
  };
}

/** validatePlugin's error, asserted to be PLT_PLUGIN_INVALID. */
function invalid(value: unknown): PlinthError {
  let caught: unknown;
  try {
    validatePlugin(value);
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(PlinthError);
  const err = caught as PlinthError;
  expect(err.code).toBe("PLT_PLUGIN_INVALID");
  return err;
}

/** A valid plugin with some fields replaced; asserts the error names `field`. */
function expectProblem(changes: Record<string, unknown>, field: string): PlinthError {
  const err = invalid({ ...validPlugin(), ...changes });
  expect(err.message).toContain(field);
  expect(err.data).toBeArray();
  return err;
}

describe("validatePlugin", () => {
  test("a valid plugin gives the expected manifest", () => {
    const definition = validPlugin();
    const { plugin, manifest } = validatePlugin(definition);
    expect(plugin).toBe(definition as never);
    expect(manifest).toEqual({
      name: "orders",
      version: "1.2.3",
      description: "Takes orders",
      routes: [
        { method: "GET", path: "/" },
        { method: "POST", path: "/orders" },
        { method: "GET", path: "/orders/:id" },
        { method: "DELETE", path: "/orders/:id" },
      ],
      actions: ["get", "stock.reserve"],
      idempotent: [],
      actionBreakers: {},
      subscriptions: ["events/inventory/#", "events/+/created"],
      needs: ["inventory", "payments"],
    });
  });

  test("the manifest is plain data (survives structured cloning)", () => {
    const { manifest } = validatePlugin(validPlugin());
    expect(structuredClone(manifest)).toEqual(manifest);
  });

  test("a minimal plugin has empty lists and no description", () => {
    const { manifest } = validatePlugin({ name: "tiny", version: "0.0.1" });
    expect(manifest).toEqual({ name: "tiny", version: "0.0.1", routes: [], actions: [], idempotent: [], actionBreakers: {}, subscriptions: [], needs: [] });
    expect("description" in manifest).toBe(false);
  });

  test("pre-release and build versions are accepted", () => {
    expect(validatePlugin({ name: "a", version: "1.0.0-beta.1+build.5" }).manifest.version).toBe("1.0.0-beta.1+build.5");
  });

  test.each([null, undefined, "orders", 42, true])("a non-object definition (%p) is rejected", (value) => {
    const err = invalid(value);
    expect(err.message).toContain("definePlugin");
  });

  test.each(["Orders", "1orders", "", "order_items"])("a bad name %p is rejected naming the field", (name) => {
    const err = expectProblem({ name }, "name:");
    expect(err.message).toContain(JSON.stringify(name));
  });

  test("a missing name is rejected", () => {
    const { name: _name, ...rest } = validPlugin();
    expect(invalid(rest).message).toContain("name:");
  });

  test.each(["1", "1.0", "v1.0.0", "1.0.0.0"])("a bad version %p is rejected naming the field", (version) => {
    const err = expectProblem({ version }, "version:");
    expect(err.message).toContain(JSON.stringify(version));
  });

  test("a numeric version is rejected", () => {
    expectProblem({ version: 1 }, "version:");
  });

  test.each(["FETCH /x", "GET x", "get /x", "GET  /x", "GET", "GET /x y", "GET /x?y"])("a bad route key %p is rejected naming it", (key) => {
    expectProblem({ routes: { [key]: handler } }, `routes["${key}"]`);
  });

  test("a route without a handler is rejected naming it", () => {
    const err = expectProblem({ routes: { "GET /x": {} } }, `routes["GET /x"]`);
    expect(err.message).toContain("handler");
    expectProblem({ routes: { "GET /x": null } }, `routes["GET /x"]: expected a handler function`);
    expectProblem({ routes: { "GET /x": { handler: "nope" } } }, `routes["GET /x"]: expected a handler function`);
  });

  test("an action without a handler is rejected naming it", () => {
    expectProblem({ actions: { reserve: { params: {} } } }, `actions["reserve"]: expected a handler function`);
  });

  test.each(["a/b", "", "1abc", "with space", "a".repeat(65)])("a bad action name %p is rejected", (name) => {
    expectProblem({ actions: { [name]: handler } }, `actions["${name}"]: invalid action name`);
  });

  test("an invalid subscription filter is rejected naming it", () => {
    expectProblem({ subscribe: { "a/#/b": handler } }, `subscribe["a/#/b"]: not a valid MQTT topic filter`);
    expectProblem({ subscribe: { "events/orders+": handler } }, `subscribe["events/orders+"]`);
  });

  test("a subscription without a handler is rejected naming it", () => {
    expectProblem({ subscribe: { "events/#": 5 } }, `subscribe["events/#"]: expected a handler function`);
  });

  test("migrations that are not strings are rejected", () => {
    expectProblem({ migrations: ["CREATE TABLE a (x)", 42] }, "migrations:");
    expectProblem({ migrations: "CREATE TABLE a (x)" }, "migrations:");
  });

  test("needs that are not service names are rejected", () => {
    expectProblem({ needs: ["Inventory"] }, "needs:");
    expectProblem({ needs: "inventory" }, "needs:");
  });

  test("routes, actions and subscribe must be objects", () => {
    expectProblem({ routes: 42 }, "routes: expected an object");
    expectProblem({ actions: "x" }, "actions: expected an object");
    expectProblem({ subscribe: true }, "subscribe: expected an object");
  });

  test("a description that is not a string is rejected", () => {
    expectProblem({ description: 123 }, "description: expected a string");
  });

  test("two keys for the same route are rejected", () => {
    expectProblem({ routes: { "GET /x": handler, "GET /x/": handler } }, 'routes["GET /x/"]: duplicates GET /x');
  });

  test("breaker settings on the plugin and on actions are checked and carried in the manifest", () => {
    const { manifest } = validatePlugin({
      ...validPlugin(),
      breaker: { failureRate: 0.2, minimumCalls: 5 },
      actions: { get: handler, risky: { handler, breaker: { failureThreshold: 1 } } },
    });
    expect(manifest.breaker).toEqual({ failureRate: 0.2, minimumCalls: 5 });
    expect(manifest.actionBreakers).toEqual({ risky: { failureThreshold: 1 } });
    expectProblem({ breaker: { failureRate: 2 } }, "breaker.failureRate");
    expectProblem({ breaker: { colour: 1 } }, "breaker");
    expectProblem({ actions: { risky: { handler, breaker: { failureThreshold: 0 } } } }, 'actions["risky"].breaker.failureThreshold');
  });

  test("several problems are reported together", () => {
    const err = invalid({
      name: "Orders",
      version: "1",
      migrations: [1],
      routes: { "FETCH /x": handler, "GET /y": {} },
      subscribe: { "a/#/b": handler },
    });
    const problems = err.data as string[];
    expect(problems).toHaveLength(6);
    for (const field of ["name:", "version:", "migrations:", `routes["FETCH /x"]`, `routes["GET /y"]`, `subscribe["a/#/b"]`]) {
      expect(problems.some((p) => p.startsWith(field))).toBe(true);
      expect(err.message).toContain(field);
    }
  });
});

describe("parseRouteKey", () => {
  test("splits method and path", () => {
    expect(parseRouteKey("GET /orders/:id")).toEqual({ method: "GET", path: "/orders/:id" });
    expect(parseRouteKey("PATCH /a-b/c_d.e~f")).toEqual({ method: "PATCH", path: "/a-b/c_d.e~f" });
  });

  test("strips trailing slashes but keeps the root", () => {
    expect(parseRouteKey("POST /orders/")).toEqual({ method: "POST", path: "/orders" });
    expect(parseRouteKey("POST /orders///")).toEqual({ method: "POST", path: "/orders" });
    expect(parseRouteKey("GET /")).toEqual({ method: "GET", path: "/" });
  });

  test("accepts every supported method", () => {
    for (const m of ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]) expect(parseRouteKey(`${m} /x`)?.method).toBe(m);
  });

  test("rejects unknown methods and paths without a leading slash", () => {
    expect(parseRouteKey("FETCH /x")).toBeNull();
    expect(parseRouteKey("CONNECT /x")).toBeNull();
    expect(parseRouteKey("GET x")).toBeNull();
    expect(parseRouteKey("/x")).toBeNull();
    expect(parseRouteKey("GET //")).toEqual({ method: "GET", path: "/" });
    expect(parseRouteKey("GET /a//b")).toBeNull();
  });
});
