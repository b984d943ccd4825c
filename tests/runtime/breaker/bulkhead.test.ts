import { describe, expect, test } from "bun:test";
import { Bulkhead } from "../../../runtime/breaker/bulkhead";
import { Breakers } from "../../../runtime/breaker/call";
import { PlinthError } from "../../../runtime/errors";
import { rejection } from "../../helpers/errors";

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

describe("Bulkhead", () => {
  test("runs maxConcurrent at once, queues maxQueue in order, refuses the rest with PLT_BULKHEAD_FULL", async () => {
    const bulkhead = new Bulkhead("svc", { maxConcurrent: 2, maxQueue: 1 });
    const started: number[] = [];
    const gates = [gate(), gate(), gate()];
    const runs = gates.map((g, i) =>
      bulkhead.run(async () => {
        started.push(i);
        await g.opened;
        return i;
      }),
    );
    await Bun.sleep(1);
    expect(started).toEqual([0, 1]);
    expect(bulkhead.load).toEqual({ active: 2, queued: 1 });

    const refused = await rejection(bulkhead.run(async () => 99));
    expect(refused.code).toBe("PLT_BULKHEAD_FULL");
    expect(refused.status).toBe(503);

    gates[0]!.open();
    await Bun.sleep(1);
    expect(started).toEqual([0, 1, 2]);
    gates[1]!.open();
    gates[2]!.open();
    expect(await Promise.all(runs)).toEqual([0, 1, 2]);
    expect(bulkhead.load).toEqual({ active: 0, queued: 0 });
  });

  test("a failing call frees its slot", async () => {
    const bulkhead = new Bulkhead("svc", { maxConcurrent: 1, maxQueue: 0 });
    await expect(bulkhead.run(() => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    expect(await bulkhead.run(async () => "next")).toBe("next");
  });
});

describe("Breakers.guard retries (idempotent calls)", () => {
  const options = { failureThreshold: 100, resetTimeoutMs: 1_000, halfOpenMaxCalls: 1 };

  test("retries callee failures up to `retries` times, then gives up with the last error", async () => {
    let calls = 0;
    const fail = () => {
      calls++;
      return Promise.reject(new Error(`fail ${calls}`));
    };
    const breakers = new Breakers(options);
    await expect(breakers.guard("svc", fail, { retries: 2, retryDelayMs: 1, deadline: Date.now() + 10_000 })).rejects.toThrow("fail 3");
    expect(calls).toBe(3);
  });

  test("succeeds on a later attempt", async () => {
    let calls = 0;
    const breakers = new Breakers(options);
    const value = await breakers.guard("svc", async () => {
      if (++calls < 3) throw new Error("not yet");
      return calls;
    }, { retries: 5, retryDelayMs: 1, deadline: Date.now() + 10_000 });
    expect(value).toBe(3);
  });

  test("never retries a caller's error, without `retry`, or past the deadline", async () => {
    const breakers = new Breakers(options);
    let calls = 0;
    const conflict = () => {
      calls++;
      return Promise.reject(new PlinthError("X", "no", { status: 409 }));
    };
    await expect(breakers.guard("a", conflict, { retries: 3, retryDelayMs: 1, deadline: Date.now() + 10_000 })).rejects.toThrow("no");
    expect(calls).toBe(1);

    calls = 0;
    const fail = () => {
      calls++;
      return Promise.reject(new Error("boom"));
    };
    await expect(breakers.guard("b", fail)).rejects.toThrow("boom");
    expect(calls).toBe(1);

    calls = 0;
    await expect(breakers.guard("c", fail, { retries: 3, retryDelayMs: 1_000, deadline: Date.now() + 100 })).rejects.toThrow("boom");
    expect(calls).toBe(1);
  });

  test("stops retrying once the breaker has opened", async () => {
    const breakers = new Breakers({ failureThreshold: 2, resetTimeoutMs: 60_000, halfOpenMaxCalls: 1 });
    let calls = 0;
    const fail = () => {
      calls++;
      return Promise.reject(new Error("boom"));
    };
    await expect(breakers.guard("svc", fail, { retries: 5, retryDelayMs: 1, deadline: Date.now() + 10_000 })).rejects.toThrow("boom");
    expect(calls).toBe(2);
    expect(breakers.get("svc").state).toBe("open");
  });
});
