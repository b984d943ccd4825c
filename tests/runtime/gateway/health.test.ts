/** GET /health through the gateway's app with a fake upstream: ok or degraded, and why. */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { BROKER_DB_FILE } from "../../../runtime/broker/persistence";
import { storeHealth } from "../../../runtime/storage/faults";
import { VERSION } from "../../../runtime/version";
import { harness } from "./fake-upstream";

const full = () => Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" });
const fault = { reason: "disk full" as const, code: "PLT_STORAGE_FULL" as const, cause: "SQLITE_FULL", detail: "database or disk is full", since: "2026-01-01T00:00:00.000Z" };

describe("GET /health", () => {
  test("every service ready, no store failing: ok, with each service's state, version, breaker and storage", async () => {
    using h = await harness({}, (u) => {
      u.add("a", [], { version: "1.2.3" });
      u.add("b", [], { manifest: false });
    });
    h.upstream.breakerStates.set("a", "half-open");
    const res = await h.fetch("/health");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      status: "ok",
      version: VERSION,
      uptimeSeconds: 0,
      services: { a: { state: "ready", version: "1.2.3", breaker: "half-open", storage: "ok" }, b: { state: "ready", breaker: "closed", storage: "ok" } },
      broker: { storage: "ok" },
      failed: [],
    });
  });

  test("degraded, still 200: a plugin failed to load, a service is not ready, or a service's store fails (reason, code, since; no detail)", async () => {
    using failed = await harness({}, (u) => u.add("a", []));
    failed.upstream.failed = [{ origin: "plugins/x.ts", error: { code: "PLT_PLUGIN_INVALID", message: "bad" } as never }];
    const res = await failed.fetch("/health");
    expect(res.status).toBe(200);
    const report = (await res.json()) as { status: string; failed: unknown[] };
    expect([report.status, report.failed]).toEqual(["degraded", [{ origin: "plugins/x.ts", error: { code: "PLT_PLUGIN_INVALID", message: "bad" } }]]);

    using starting = await harness({}, (u) => u.add("a", [], { state: "starting" }));
    expect(((await (await starting.fetch("/health")).json()) as { status: string }).status).toBe("degraded");

    using storing = await harness({}, (u) => {
      u.add("a", []);
      u.add("b", []).host.storage = fault;
    });
    const stored = (await (await storing.fetch("/health")).json()) as { status: string; services: Record<string, { storage: unknown }> };
    expect(stored.status).toBe("degraded");
    expect(stored.services.a!.storage).toBe("ok");
    expect(stored.services.b!.storage).toEqual({ reason: "disk full", code: "SQLITE_FULL", since: fault.since });
  });

  test("the broker's store failing degrades the node; with the broker in memory there is none to fail", async () => {
    using h = await harness({}, (u) => u.add("a", []));
    const broker = storeHealth(join(h.config.data.dir, BROKER_DB_FILE));
    broker.failed(full());
    const report = (await (await h.fetch("/health")).json()) as { status: string; broker: { storage: { reason: string; code: string; since: string } } };
    expect(report.status).toBe("degraded");
    expect(report.broker.storage).toEqual({ reason: "disk full", code: "SQLITE_FULL", since: broker.fault!.since });

    using memory = await harness({ broker: { persistence: "memory" } }, (u) => u.add("a", []));
    storeHealth(join(memory.config.data.dir, BROKER_DB_FILE)).failed(full());
    expect(await (await memory.fetch("/health")).json()).toMatchObject({ status: "ok", broker: { storage: "ok" } });
  });

  test("uptime in whole seconds since the app was built", async () => {
    const realNow = Date.now;
    let now = realNow();
    Date.now = () => now;
    try {
      using h = await harness({}, (u) => u.add("a", []));
      now += 1_499;
      expect(((await (await h.fetch("/health")).json()) as { uptimeSeconds: number }).uptimeSeconds).toBe(1);
      now += 1;
      expect(((await (await h.fetch("/health")).json()) as { uptimeSeconds: number }).uptimeSeconds).toBe(2);
    } finally {
      Date.now = realNow;
    }
  });
});
