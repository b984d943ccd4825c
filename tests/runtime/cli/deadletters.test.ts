/** `plinth deadletters <service> [--redrive <id>]` (runtime/cli/deadletters.ts) against answers of a platform's HTTP API, without a port. */
import { describe, expect, test } from "bun:test";
import { deadLetters } from "../../../runtime/cli/deadletters";
import { captured, invoke } from "./invoke";
import { fakeFetch, json } from "./fake-fetch";

const LETTER = {
  id: 3,
  subscription: "events/orders/#",
  source: "orders",
  event: { type: "orders.created", id: "0190-ab", data: {} },
  attempts: 5,
  error: "PLT_TIMEOUT: handler took longer than 200 ms",
  failed_at: "2026-01-02T03:04:05.000Z",
};

const run = (options: Parameters<typeof deadLetters>[0]) =>
  captured(async () => {
    process.exitCode = await deadLetters(options);
  });

describe("deadletters", () => {
  test("lists one line per letter: id, when, subscription, event type and id, attempts, error", async () => {
    using fake = fakeFetch(() => json([LETTER, { ...LETTER, id: 4, attempts: 1, error: "boom" }]));
    const out = await run({ service: "billing", url: "http://h:1" });
    expect(out).toEqual({
      code: 0,
      stdout: [
        "3  2026-01-02T03:04:05.000Z  events/orders/#  orders.created  0190-ab  attempts=5  PLT_TIMEOUT: handler took longer than 200 ms",
        "4  2026-01-02T03:04:05.000Z  events/orders/#  orders.created  0190-ab  attempts=1  boom",
      ].join("\n"),
      stderr: "",
    });
    expect(fake.sent).toEqual([{ method: "GET", url: "http://h:1/api/platform/deadletters/billing", headers: {} }]);
  });

  test("none: says so, exit 0", async () => {
    using _ = fakeFetch(() => json([]));
    expect(await run({ service: "billing", url: "http://h:1/" })).toEqual({ code: 0, stdout: "no dead letters for billing", stderr: "" });
  });

  test("--redrive: POST to the letter's redrive, then says which", async () => {
    using fake = fakeFetch(() => json({ redriven: 3 }));
    expect(await run({ service: "billing", url: "http://h:1/", redrive: 3, key: "plk_k" })).toEqual({ code: 0, stdout: "re-driven dead letter 3 of billing", stderr: "" });
    expect(fake.sent).toEqual([{ method: "POST", url: "http://h:1/api/platform/deadletters/billing/3/redrive", headers: { "x-api-key": "plk_k" } }]);
  });

  test("--redrive 0 is a letter id like any other", async () => {
    using fake = fakeFetch(() => json({ redriven: 0 }));
    expect((await run({ service: "s", url: "http://h:1", redrive: 0 })).stdout).toBe("re-driven dead letter 0 of s");
    expect(fake.sent[0]!.method).toBe("POST");
  });

  test("the service name is one path segment, whatever it holds", async () => {
    using fake = fakeFetch(() => json([]));
    await run({ service: "../a/b?c#d", url: "http://h:1" });
    expect(fake.sent[0]!.url).toBe("http://h:1/api/platform/deadletters/..%2Fa%2Fb%3Fc%23d");
  });

  test("an error answer: exit 1 with its code and message on one line", async () => {
    using _ = fakeFetch(() => json({ error: { code: "SINK_POISON", message: "still failing" } }, 500));
    expect(await run({ service: "sink", url: "http://h:1", redrive: 9 })).toEqual({ code: 1, stdout: "", stderr: "plinth: SINK_POISON: still failing" });
  });

  test("an error answer without an error body: the HTTP status and its text", async () => {
    using _ = fakeFetch(() => new Response("{}", { status: 404, statusText: "Not Found" }));
    expect(await run({ service: "ghost", url: "http://h:1" })).toEqual({ code: 1, stdout: "", stderr: "plinth: 404: Not Found" });
  });
});

describe("deadletters through the command line", () => {
  test("--redrive is a number; --key and --url reach the request", async () => {
    using fake = fakeFetch(() => json({ redriven: 12 }));
    const out = await invoke(["deadletters", "orders", "--redrive", "12", "--url", "http://h:9", "--key", "plk_x"]);
    expect(out).toEqual({ code: 0, stdout: "re-driven dead letter 12 of orders", stderr: "" });
    expect(fake.sent).toEqual([{ method: "POST", url: "http://h:9/api/platform/deadletters/orders/12/redrive", headers: { "x-api-key": "plk_x" } }]);
  });

  test("a fetch that fails: exit 1, its message on one line", async () => {
    using _ = fakeFetch(() => {
      throw new Error("Unable to connect. Is the computer able to access the url?");
    });
    expect(await invoke(["deadletters", "orders", "--url", "http://h:9"])).toEqual({ code: 1, stdout: "", stderr: "plinth: Unable to connect. Is the computer able to access the url?" });
  });
});
