import { describe, expect, test } from "bun:test";
import { SERVICE_NAME, Topics, eventSource, eventType, isValidEventType, isValidTopicFilter, topicMatches } from "../../runtime/protocol";

describe("isValidTopicFilter", () => {
  test("plain topic names and filters with whole-level wildcards are valid", () => {
    for (const f of ["a", "a/b/c", "events/orders/#", "#", "+", "+/+", "events/+/created", "/finance", "a//b", "$SYS/#", "sport/tennis/+/#"]) {
      expect([f, isValidTopicFilter(f)]).toEqual([f, true]);
    }
  });

  test("[MQTT-4.7.1-2] '#' must be last and alone in its level", () => {
    expect(isValidTopicFilter("sport/#")).toBe(true);
    expect(isValidTopicFilter("a/#/b")).toBe(false); // not last
    expect(isValidTopicFilter("#/a")).toBe(false);
    expect(isValidTopicFilter("sport#")).toBe(false); // not alone in its level
    expect(isValidTopicFilter("sport/tennis#")).toBe(false);
    expect(isValidTopicFilter("sport/##")).toBe(false);
  });

  test("[MQTT-4.7.1-3] '+' must occupy a whole level", () => {
    expect(isValidTopicFilter("sport/+/player1")).toBe(true);
    expect(isValidTopicFilter("sport+")).toBe(false);
    expect(isValidTopicFilter("sport/+tennis")).toBe(false);
    expect(isValidTopicFilter("sport/++")).toBe(false);
  });

  test("[MQTT-4.7.3-1] a filter must be at least one character long", () => {
    expect(isValidTopicFilter("")).toBe(false);
    expect(isValidTopicFilter("/")).toBe(true);
  });

  test("[MQTT-4.7.3-2] a filter must not contain the null character", () => {
    expect(isValidTopicFilter("a\u0000b")).toBe(false);
  });

  test("a filter longer than 65535 characters is rejected", () => {
    expect(isValidTopicFilter("a".repeat(65535))).toBe(true);
    expect(isValidTopicFilter("a".repeat(65536))).toBe(false);
  });
});

describe("topicMatches", () => {
  test("an exact filter matches only the same topic", () => {
    expect(topicMatches("a/b", "a/b")).toBe(true);
    expect(topicMatches("a/b", "a/c")).toBe(false);
    expect(topicMatches("a/b", "a/b/c")).toBe(false);
    expect(topicMatches("a/b", "a")).toBe(false);
  });

  test("[MQTT-4.7.1-2] '#' matches the parent level and any number of child levels", () => {
    expect(topicMatches("sport/tennis/player1/#", "sport/tennis/player1")).toBe(true);
    expect(topicMatches("sport/tennis/player1/#", "sport/tennis/player1/ranking")).toBe(true);
    expect(topicMatches("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon")).toBe(true);
    expect(topicMatches("sport/#", "sport")).toBe(true);
    expect(topicMatches("sport/#", "sports")).toBe(false);
    expect(topicMatches("#", "anything/at/all")).toBe(true);
  });

  test("[MQTT-4.7.1-3] '+' matches exactly one level, which may be empty", () => {
    expect(topicMatches("sport/tennis/+", "sport/tennis/player1")).toBe(true);
    expect(topicMatches("sport/tennis/+", "sport/tennis/player1/ranking")).toBe(false);
    expect(topicMatches("sport/+", "sport")).toBe(false);
    expect(topicMatches("sport/+", "sport/")).toBe(true);
    expect(topicMatches("+/+", "/finance")).toBe(true);
    expect(topicMatches("/+", "/finance")).toBe(true);
    expect(topicMatches("+", "/finance")).toBe(false);
    expect(topicMatches("events/+/created", "events/orders/created")).toBe(true);
    expect(topicMatches("events/+/created", "events/orders/deleted")).toBe(false);
  });

  test("topic levels are case-sensitive", () => {
    expect(topicMatches("events/Orders", "events/orders")).toBe(false);
  });

  test("[MQTT-4.7.2-1] '$' topics are not matched by a leading wildcard", () => {
    expect(topicMatches("#", "$SYS/broker/clients")).toBe(false);
    expect(topicMatches("+/breakers/orders", "$platform/breakers/orders")).toBe(false);
    expect(topicMatches("+/#", "$platform/breakers/orders")).toBe(false);
    expect(topicMatches("$platform/#", "$platform/breakers/orders")).toBe(true);
    expect(topicMatches("$platform/breakers/+", "$platform/breakers/orders")).toBe(true);
    // '$' is only special at the start of the topic
    expect(topicMatches("+/#", "a/$b")).toBe(true);
  });
});

describe("Topics", () => {
  test("event(service, type) lives in the service's own namespace", () => {
    expect(Topics.event("orders", "created")).toBe("events/orders/created");
    expect(Topics.event("orders", "item/added")).toBe("events/orders/item/added");
    expect(topicMatches(`${Topics.eventsRoot}/orders/#`, Topics.event("orders", "item/added"))).toBe(true);
  });

  test("breaker(service) is under $platform, hidden from leading wildcards", () => {
    expect(Topics.breaker("inventory")).toBe("$platform/breakers/inventory");
    expect(Topics.breaker("inventory").startsWith(Topics.platformRoot + "/")).toBe(true);
    expect(topicMatches("#", Topics.breaker("inventory"))).toBe(false);
  });
});

describe("eventType / eventSource", () => {
  test("eventType joins service and type with dots", () => {
    expect(eventType("orders", "created")).toBe("orders.created");
    expect(eventType("orders", "item/added")).toBe("orders.item.added");
    expect(eventType("orders", "a/b/c")).toBe("orders.a.b.c");
  });

  test("eventSource names the service", () => {
    expect(eventSource("orders")).toBe("plinth/orders");
  });
});

describe("SERVICE_NAME", () => {
  test.each(["a", "orders", "order-items", "v2", "a" + "b".repeat(62)])("accepts %p", (name) => {
    expect(SERVICE_NAME.test(name)).toBe(true);
  });

  test.each(["", "Orders", "1orders", "-orders", "order_items", "order.items", "orders/x", "a" + "b".repeat(63), "$node"])(
    "rejects %p",
    (name) => {
      expect(SERVICE_NAME.test(name)).toBe(false);
    },
  );
});

describe("isValidEventType", () => {
  test.each(["created", "item/added", "Order_Created", "v1.created", "a-b/c.d/e_f", "...", "a".repeat(64)])("accepts %p", (type) => {
    expect(isValidEventType(type)).toBe(true);
  });

  test.each([
    "",
    "/created",
    "created/",
    "item//added",
    "item/+",
    "#",
    "a/#",
    "with space",
    "é",
    ".",
    "..",
    "a/../b",
    "a/./b",
    "a".repeat(65),
  ])("rejects %p", (type) => {
    expect(isValidEventType(type)).toBe(false);
  });

  test("rejects types longer than 256 characters even with short levels", () => {
    const levels = Array.from({ length: 52 }, () => "abcd").join("/"); // 52*5-1 = 259 chars
    expect(levels.length).toBeGreaterThan(256);
    expect(isValidEventType(levels)).toBe(false);
    expect(isValidEventType(levels.slice(0, 254))).toBe(true);
  });

  test("rejects non-strings", () => {
    for (const v of [undefined, null, 42, ["created"], { type: "created" }]) expect(isValidEventType(v)).toBe(false);
  });
});
