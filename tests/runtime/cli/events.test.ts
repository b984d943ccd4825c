/** `plinth events tail` (runtime/cli/events.ts): the line printed for each message, and a broker URL that cannot work. */
import { describe, expect, test } from "bun:test";
import { formatEvent } from "../../../runtime/cli/events";
import { invoke } from "./invoke";

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const event = (fields: Record<string, unknown>) => Buffer.from(JSON.stringify({ specversion: "1.0", source: "orders", ...fields }));

describe("formatEvent", () => {
  test("a CloudEvent: its time, the topic, type, id and data as JSON, two spaces apart", () => {
    const payload = event({ time: "2026-01-02T03:04:05.678Z", type: "orders.created", id: "e-1", data: { id: 7, note: "two  spaces" } });
    expect(formatEvent("events/orders/created", payload)).toBe('2026-01-02T03:04:05.678Z  events/orders/created  orders.created  e-1  {"id":7,"note":"two  spaces"}');
  });

  test("data null or a string", () => {
    expect(formatEvent("t", event({ time: "T", type: "x", id: "1", data: null }))).toBe("T  t  x  1  null");
    expect(formatEvent("t", event({ time: "T", type: "x", id: "1", data: "hi" }))).toBe('T  t  x  1  "hi"');
  });

  test("anything else (not JSON, JSON that is no CloudEvent 1.0, empty, binary): the time now, the topic and the payload as text", () => {
    const before = Date.now();
    for (const text of ["plain text", '{"specversion":"0.3","type":"x"}', "[1,2]", "null", '"1.0"', "", "{broken", '{"specversion":1}']) {
      const line = formatEvent("sensors/t1", Buffer.from(text));
      const [time, ...rest] = line.split("  ");
      expect(time).toMatch(ISO);
      expect(Date.parse(time!)).toBeGreaterThanOrEqual(before - 1);
      expect(rest.join("  ")).toBe(`sensors/t1  ${text}`);
    }
  });

  test("the payload is read as UTF-8", () => {
    expect(formatEvent("t", Buffer.from("Grüße ✓", "utf8"))).toEndWith("  t  Grüße ✓");
  });
});

describe("events tail through the command line", () => {
  test("a broker URL that cannot be used: exit 1 with the reason on one line", async () => {
    for (const [url, reason] of [
      ["ws://x:99999", "Invalid URL: ws://x:99999/"],
      ["not a url", "Missing protocol"],
    ] as const) {
      const out = await invoke(["events", "tail", "events/#", "--url", url]);
      expect(out).toEqual({ code: 1, stdout: "", stderr: `plinth: ${reason}` });
    }
  });
});
