import { describe, expect, test } from "bun:test";
import { covers, decide, isBrokerInternal, isReservedTopic } from "../../../runtime/broker/acl";
import { compileRules, type AclEntry, type Action } from "../../../runtime/broker/acl-rules";

describe("covers(ACL pattern, topic or filter)", () => {
  test.each([
    ["#", "a/b", true],
    ["a/#", "a", true], // [MQTT-4.7.1-2] a/# matches the parent level too
    ["a/#", "a/b/c", true],
    ["a/+", "a/b", true],
    ["a/+", "a/b/c", false],
    ["a/+", "a/+", true],
    ["a/+", "a/#", false], // a subscription to a/# would receive a/b/c, which a/+ does not allow
    ["a/b", "a/+", false],
    ["a/b", "a/b", true],
    ["a/b", "a/c", false],
    ["devices/sensor-1/#", "devices/sensor-1/temp", true],
    ["devices/sensor-1/#", "devices/sensor-2/temp", false],
    ["#", "$SYS/broker/uptime", false], // [MQTT-4.7.2-1] $ topics are not matched by # or + at the first level
    ["+/broker/uptime", "$SYS/broker/uptime", false],
    ["$SYS/#", "$SYS/broker/uptime", true],
  ])("%s covers %s: %p", (pattern, topic, expected) => {
    expect(covers(pattern, topic)).toBe(expected);
  });
});

describe("isBrokerInternal: aedes' own $SYS topics, never forwarded", () => {
  test.each([
    ["$SYS/0b7a2c1e-5f1d-4a5e-9d7e-2f0e8c1b3a4d/new/clients", true],
    ["$SYS/0b7a2c1e-5f1d-4a5e-9d7e-2f0e8c1b3a4d/new/subscribes", true],
    ["$SYS/0b7a2c1e-5f1d-4a5e-9d7e-2f0e8c1b3a4d/heartbeat", true],
    ["$SYS/broker/uptime", false],
    ["$SYS/broker/load/messages/received/1min", false],
    ["$platform/x", false],
    ["sensors/SYS/a", false],
  ])("%s: %p", (topic, expected) => {
    expect(isBrokerInternal(topic)).toBe(expected);
  });
});

/** Rules of `roles` for `action`, as a client with identity `user` and client id `clientId` gets them. */
const rules = (acl: Record<string, AclEntry>, action: Action, roles = Object.keys(acl), user = "dev-1", clientId = "c-1") =>
  compileRules(acl, roles, action, user, clientId, isReservedTopic);

describe("deny rules: the most specific rule wins, deny wins a tie", () => {
  const acl: Record<string, AclEntry> = {
    reader: {
      publish: ["#"],
      subscribe: ["#", "secrets/public/#", "$SYS/#"],
      deny: { publish: ["secrets/#"], subscribe: ["secrets/#", "test/nosubscribe", "a/+/c", "$SYS/broker/clients/#"] },
    },
  };
  const subscribe = rules(acl, "subscribe");
  const publish = rules(acl, "publish");
  test.each([
    // topic or filter, allowed
    ["news/today", true],
    ["#", true], // the filter: no deny covers all of it (forwarding checks each topic)
    ["secrets/x", false], // secrets/# (1 literal level) beats # (0)
    ["secrets", false], // [MQTT-4.7.1-2] secrets/# covers its parent level
    ["secrets/#", false],
    ["secrets/+", false],
    ["secrets/public/x", true], // secrets/public/# (2) beats secrets/# (1)
    ["secrets/public/#", true],
    ["test/nosubscribe", false],
    ["test/+", true], // the filter is allowed; test/nosubscribe is not forwarded
    ["test/other", true],
    ["a/b/c", false], // a/+/c (2) beats # (0)
    ["a/b/d", true],
    ["$SYS/broker/uptime", true],
    ["$SYS/broker/clients/connected", false],
  ])("subscribe %s: %p", (topic, expected) => {
    expect(decide(subscribe, topic)).toBe(expected);
  });

  test("publish and subscribe are separate decisions", () => {
    expect(decide(publish, "secrets/x")).toBe(false);
    expect(decide(publish, "test/nosubscribe")).toBe(true);
    expect(decide(publish, "secrets/public/x")).toBe(false); // no publish allow more specific than the deny
  });

  test("a tie goes to deny, whichever rule comes first and whichever role gives it", () => {
    const tie: Record<string, AclEntry> = { a: { publish: [], subscribe: ["x/+/z"] }, b: { publish: [], subscribe: [], deny: { subscribe: ["+/y/z"] } } };
    expect(decide(rules(tie, "subscribe"), "x/y/z")).toBe(false);
    expect(decide(rules(tie, "subscribe", ["b", "a"]), "x/y/z")).toBe(false);
    expect(decide(rules(tie, "subscribe"), "x/w/z")).toBe(true);
    // The same filter allowed and denied: denied.
    const same: Record<string, AclEntry> = { r: { publish: ["s/#"], subscribe: [], deny: { publish: ["s/#"] } } };
    expect(decide(rules(same, "publish"), "s/1")).toBe(false);
  });

  test("a more specific allow in another role wins over a role's deny", () => {
    const two: Record<string, AclEntry> = {
      device: { publish: [], subscribe: ["#"], deny: { subscribe: ["secrets/#"] } },
      auditor: { publish: [], subscribe: ["secrets/audit/#"] },
    };
    expect(decide(rules(two, "subscribe", ["device"]), "secrets/audit/1")).toBe(false);
    expect(decide(rules(two, "subscribe", ["device", "auditor"]), "secrets/audit/1")).toBe(true);
    expect(decide(rules(two, "subscribe", ["device", "auditor"]), "secrets/keys/1")).toBe(false);
  });

  test("no rule covering the topic: denied; a deny alone grants nothing", () => {
    expect(decide(rules({ r: { publish: [], subscribe: [], deny: { subscribe: ["x/#"] } } }, "subscribe"), "y")).toBe(false);
    expect(decide(rules({}, "subscribe"), "y")).toBe(false);
  });

  test("%u and %c are substituted in deny rules; a value that cannot be substituted denies the whole level", () => {
    const acl: Record<string, AclEntry> = { d: { publish: [], subscribe: ["devices/#"], deny: { subscribe: ["devices/%u/private", "devices/%c/debug"] } } };
    expect(decide(rules(acl, "subscribe", ["d"], "dev-1", "c-1"), "devices/dev-1/private")).toBe(false);
    expect(decide(rules(acl, "subscribe", ["d"], "dev-1", "c-1"), "devices/dev-2/private")).toBe(true);
    expect(decide(rules(acl, "subscribe", ["d"], "dev-1", "c-1"), "devices/c-1/debug")).toBe(false);
    // Anonymous (no identity), or a client id with a level separator: every device's private topic is refused.
    expect(decide(rules(acl, "subscribe", ["d"], "", "c-1"), "devices/dev-2/private")).toBe(false);
    expect(decide(rules(acl, "subscribe", ["d"], "dev-1", "a/b"), "devices/x/debug")).toBe(false);
    // In an allow rule the same value matches nothing.
    const allow: Record<string, AclEntry> = { d: { publish: ["devices/%u/#"], subscribe: [] } };
    expect(decide(rules(allow, "publish", ["d"], "", "c"), "devices//x")).toBe(false);
    expect(decide(rules(allow, "publish", ["d"], "+", "c"), "devices/+/x")).toBe(false);
    expect(decide(rules(allow, "publish", ["d"], "dev-1", "c"), "devices/dev-1/x")).toBe(true);
  });
});
