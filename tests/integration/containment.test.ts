/**
 * Plugin behaviours with values that cannot cross between threads, against the real platform:
 * each fails its own request with a precise answer; the main thread and the plugin's worker stay
 * up (no restart) and keep serving.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { boot, NO_BREAKER, type Booted } from "../helpers/boot";
import { connectMqtt, eventually } from "../helpers/mqtt";

/** Building and refusing a value nested 100,000 levels takes seconds on a busy machine. */
const DEEP_MS = 60_000;

let p: Booted;
beforeAll(async () => {
  p = await boot({ fixtures: ["hostile", "forger"] }, { breaker: NO_BREAKER, workers: { restartDelayMs: 10 } });
});
afterAll(() => p.stop());

type ErrorBody = { error: { code: string; message: string } };

/** After each case: the worker never restarted and still answers. */
afterEach(async () => {
  expect(await (await p.req("/api/hostile/ok")).json()).toEqual({ ok: true });
  const { services } = (await (await p.req("/api/platform/services")).json()) as { services: Array<{ name: string; restarts: number; state: string }> };
  expect(services.find((s) => s.name === "hostile")).toMatchObject({ state: "ready", restarts: 0 });
});

/** The body of an error answer, checked to carry no source, path or stack. */
async function failed(res: Response, status: number): Promise<ErrorBody["error"]> {
  expect(res.status).toBe(status);
  const text = await res.text();
  for (const leak of ["hostile.ts", p.pluginsDir, " at ", "| "]) expect(text).not.toContain(leak);
  return (JSON.parse(text) as ErrorBody).error;
}

const THROWN = ["string", "null", "undefined", "number", "object", "symbol", "null-prototype", "throwing-tostring"];

describe("a handler that throws what is not an Error", () => {
  test.each(THROWN)("throw %s (synchronous handler) → 500 PLT_HANDLER_ERROR, generic message", async (kind) => {
    expect(await failed(await p.req(`/api/hostile/throw/${kind}`), 500)).toEqual({ code: "PLT_HANDLER_ERROR", message: "hostile: GET /throw/:kind failed" });
  });

  test.each(THROWN)("throw %s (async handler) → 500 PLT_HANDLER_ERROR, generic message", async (kind) => {
    expect(await failed(await p.req(`/api/hostile/throw-async/${kind}`), 500)).toEqual({ code: "PLT_HANDLER_ERROR", message: "hostile: GET /throw-async/:kind failed" });
  });

  test("a PlinthError whose data JSON cannot carry → 500 PLT_HANDLER_ERROR", async () => {
    expect((await failed(await p.req("/api/hostile/throw/plinth-error-bigint-data"), 500)).code).toBe("PLT_HANDLER_ERROR");
  });
});

describe("a handler that returns what JSON cannot carry", () => {
  test.each(["bigint", "circular", "deep", "function", "symbol"])("route returns %s → 500 PLT_HANDLER_ERROR", async (kind) => {
    for (const route of ["return", "return-async"]) {
      expect((await failed(await p.req(`/api/hostile/${route}/${kind}`), 500)).code).toBe("PLT_HANDLER_ERROR");
    }
  }, DEEP_MS);

  test("route returns undefined → 204", async () => {
    expect((await p.req("/api/hostile/return/undefined")).status).toBe(204);
  });

  test.each(["bigint", "circular", "deep", "deep-2000", "function", "symbol"])("action returns %s → its caller gets PLT_HANDLER_ERROR", async (kind) => {
    expect(await (await p.req(`/api/hostile/give/${kind}`)).json()).toEqual({ ok: false, code: "PLT_HANDLER_ERROR", status: 500 });
  }, DEEP_MS);
});

describe("events and calls that cannot cross", () => {
  test.each(["bigint", "circular", "deep", "deep-2000", "function", "symbol"])("emit with %s data → 500 PLT_EVENT_INVALID, nothing committed", async (kind) => {
    const error = await failed(await p.req(`/api/hostile/emit/${kind}`, { method: "POST" }), 500);
    expect(error.code).toBe("PLT_EVENT_INVALID");
    expect(error.message).toStartWith("emit bad: data");
    const log = (await (await p.req("/api/platform/events?service=hostile")).json()) as Array<{ type: string }>;
    expect(log.filter((e) => e.type === "hostile.bad")).toEqual([]);
  }, DEEP_MS);

  test.each(["bigint", "circular", "deep", "deep-2000"])("ctx.call with %s params → the call fails with PLT_BAD_REQUEST", async (kind) => {
    expect(await (await p.req(`/api/hostile/call/${kind}`, { method: "POST" })).json()).toEqual({ ok: false, code: "PLT_BAD_REQUEST", status: 400 });
  }, DEEP_MS);

  test("100,000 emits in one transaction commit and answer", async () => {
    const res = await p.req("/api/hostile/emit-bulk?n=100000", { method: "POST" });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ emitted: 100_000 });
    const log = (await (await p.req("/api/platform/events?service=hostile&after=99999&limit=10")).json()) as Array<{ data: { i: number } }>;
    expect(log.map((e) => e.data.i)).toEqual([99_999]);
  }, DEEP_MS);

  test("a request body nested 50,000 levels deep → 400, and the platform stays up", async () => {
    const body = "[".repeat(50_000) + "]".repeat(50_000);
    const res = await p.req("/api/hostile/echo", { method: "POST", body, headers: { "content-type": "application/json" } });
    const error = await failed(res, 400);
    expect(["PLT_BAD_JSON", "PLT_BAD_REQUEST"]).toContain(error.code);
  }, DEEP_MS);
});

describe("payloads from outside", () => {
  test("an MQTT payload nested 100,000 levels reaches a subscribing plugin as text; JSON within the bound as its value", async () => {
    await using device = await connectMqtt(p.mqttUrl);
    const deep = "[".repeat(100_000) + "]".repeat(100_000);
    await device.client.publishAsync("devices/d1/payload", deep, { qos: 1 });
    const got = await eventually(async () => {
      const last = (await (await p.req("/api/hostile/device-data")).json()) as { topic: string; type: string; length: number } | null;
      return last?.topic === "devices/d1/payload" ? last : null;
    });
    expect(got).toEqual({ topic: "devices/d1/payload", type: "string", length: 200_000 });
    await device.client.publishAsync("devices/d2/payload", JSON.stringify({ nested: [[[1]]] }), { qos: 1 });
    expect(await eventually(async () => {
      const last = (await (await p.req("/api/hostile/device-data")).json()) as { topic: string; type: string; length: number } | null;
      return last?.topic === "devices/d2/payload" ? last : null;
    })).toEqual({ topic: "devices/d2/payload", type: "object", length: -1 });
  }, DEEP_MS);
});

describe("messages a plugin posts to its host itself", () => {
  const restarts = async (name: string) => {
    const { services } = (await (await p.req("/api/platform/services")).json()) as { services: Array<{ name: string; restarts: number; state: string }> };
    return services.find((s) => s.name === name)!;
  };

  test("protocol messages of the wrong shape are logged and ignored; the worker serves on", async () => {
    // (other tests here restart the forger: what counts is that this one does not)
    const before = (await restarts("forger")).restarts;
    expect(await (await p.req("/api/forger/bad-shapes", { method: "POST" })).json()).toEqual({ posted: true });
    expect(await (await p.req("/api/forger/ok")).json()).toEqual({ ok: true });
    expect(await restarts("forger")).toMatchObject({ state: "ready", restarts: before });
  });

  test.each(["text", "deep", "object"])("an unreadable message (%s) ends that worker alone: its requests get 503, it is restarted", async (kind) => {
    const before = (await restarts("forger")).restarts;
    const hanging = p.req("/api/forger/hang");
    expect((await p.req(`/api/forger/garbage/${kind}`, { method: "POST" })).status).toBe(200);
    expect(await failed(await hanging, 503)).toEqual({ code: "PLT_SERVICE_UNAVAILABLE", message: "forger: worker broke the protocol" });
    await eventually(async () => {
      const now = await restarts("forger");
      return now.state === "ready" && now.restarts === before + 1;
    });
    expect(await (await p.req("/api/forger/ok")).json()).toEqual({ ok: true });
  });
});
