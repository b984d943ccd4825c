/** MQTT messages as the CloudEvents subscribing plugins get. */
import { describe, expect, test } from "bun:test";
import { toCloudEvent } from "../../../runtime/loader/events";
import { MAX_DATA_DEPTH } from "../../../runtime/worker/channel";

describe("toCloudEvent", () => {
  const payload = (value: unknown) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value));

  test("a CloudEvent (a service's event) passes through as it is", () => {
    const ce = { specversion: "1.0", id: "x", source: "plinth/orders", type: "orders.placed", time: "t", data: { n: 1 }, sequence: "7" };
    expect(toCloudEvent("events/orders/placed", payload(ce)) as unknown).toEqual(ce);
  });

  test("any other JSON payload is wrapped as mqtt.message, its topic as subject", () => {
    const ce = toCloudEvent("sensors/1", payload({ temp: 21, specversion: "0.3" }));
    expect(ce).toEqual({
      specversion: "1.0",
      id: expect.any(String),
      source: "mqtt",
      type: "mqtt.message",
      time: expect.any(String),
      datacontenttype: "application/json",
      subject: "sensors/1",
      data: { temp: 21, specversion: "0.3" },
    });
    expect(Number.isNaN(Date.parse(ce.time))).toBe(false);
    expect(toCloudEvent("sensors/1", payload(1)).id).not.toBe(ce.id);
  });

  test("JSON scalars and null are data as parsed; text that is not JSON stays text", () => {
    expect(toCloudEvent("t", payload("42")).data).toBe(42);
    expect(toCloudEvent("t", payload("null")).data).toBeNull();
    expect(toCloudEvent("t", payload('"quoted"')).data).toBe("quoted");
    expect(toCloudEvent("t", payload("not json {")).data).toBe("not json {");
    expect(toCloudEvent("t", Buffer.alloc(0)).data).toBe("");
  });

  test("a payload nested deeper than event data may be stays text, even when it is a CloudEvent", () => {
    const deep = `{"specversion":"1.0","id":"x","data":${"[".repeat(MAX_DATA_DEPTH)}${"]".repeat(MAX_DATA_DEPTH)}}`;
    const ce = toCloudEvent("t", payload(deep));
    expect(ce.type).toBe("mqtt.message");
    expect(ce.data).toBe(deep);
    const atLimit = "[".repeat(MAX_DATA_DEPTH) + "]".repeat(MAX_DATA_DEPTH);
    expect(toCloudEvent("t", payload(atLimit)).data).toEqual(JSON.parse(atLimit));
  });
});
