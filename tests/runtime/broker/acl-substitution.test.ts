/** ACL rules: what `%u` and `%c` may become, what makes a rule specific, and roles without rules. */
import { expect, test } from "bun:test";
import { covers, isReservedTopic } from "../../../runtime/broker/acl";
import { compileRules, decide, type AclEntry, type Action } from "../../../runtime/broker/acl-rules";

const rules = (acl: Record<string, AclEntry | undefined>, action: Action, roles: string[], user: string, clientId: string) =>
  compileRules(acl, roles, action, user, clientId, isReservedTopic);

test("a level that uses only %c is substituted even when the identity could not be (an anonymous client)", () => {
  const acl = { anonymous: { publish: ["clients/%c/#"], subscribe: [] } };
  expect(decide(rules(acl, "publish", ["anonymous"], "", "c-1"), "clients/c-1/status")).toBe(true);
});

test("a level that uses only %u is substituted even when the client id could not be", () => {
  const acl = { device: { publish: ["users/%u/#"], subscribe: [] } };
  expect(decide(rules(acl, "publish", ["device"], "alice", "a+b"), "users/alice/x")).toBe(true);
  expect(decide(rules(acl, "publish", ["device"], "alice", "a/b"), "users/alice/x")).toBe(true);
});

test("an identity starting with $ is not substituted into an allow rule: it would reach a $ namespace", () => {
  const acl = { device: { publish: ["%u/#"], subscribe: [] } };
  expect(decide(rules(acl, "publish", ["device"], "$x", "c-1"), "$x/a")).toBe(false);
  expect(decide(rules(acl, "publish", ["device"], "x", "c-1"), "x/a")).toBe(true);
});

test("wildcard levels give a rule no specificity: a deny with fewer literal levels loses to the allow", () => {
  const acl = { r: { publish: ["a/b/#"], subscribe: [], deny: { publish: ["+/+/c"], subscribe: [] } } };
  // a/b/# has two literal levels, +/+/c one.
  expect(decide(rules(acl, "publish", ["r"], "u", "c"), "a/b/c")).toBe(true);
  expect(decide(rules(acl, "publish", ["r"], "u", "c"), "x/y/c")).toBe(false);
  // A trailing `#` is no literal level either: a/b/# and a/b/+ both have two, and the deny wins the tie.
  const tie = { r: { publish: ["a/b/#"], subscribe: [], deny: { publish: ["a/b/+"], subscribe: [] } } };
  expect(decide(rules(tie, "publish", ["r"], "u", "c"), "a/b/c")).toBe(false);
  expect(decide(rules(tie, "publish", ["r"], "u", "c"), "a/b/c/d")).toBe(true);
});

test("a role with no entry in the ACL adds no rule; the client's other roles still decide", () => {
  const acl = { reader: { publish: [], subscribe: ["news/#"] } };
  expect(decide(rules(acl, "subscribe", ["ghost", "reader"], "u", "c"), "news/today")).toBe(true);
  expect(decide(rules(acl, "subscribe", ["ghost"], "u", "c"), "news/today")).toBe(false);
});

test("equally specific allows from two roles: allowed (only a deny wins a tie)", () => {
  const acl = { a: { publish: ["x/#"], subscribe: [] }, b: { publish: ["+/y"], subscribe: [] } };
  expect(decide(rules(acl, "publish", ["a", "b"], "u", "c"), "x/y")).toBe(true);
  expect(decide(rules(acl, "publish", ["b", "a"], "u", "c"), "x/y")).toBe(true);
});

test("[MQTT-4.7.1-2] `#` covers its parent level, but not past a `+` level the topic lacks", () => {
  expect(covers("a/#", "a")).toBe(true);
  expect(covers("a/+/#", "a")).toBe(false);
  expect(covers("a/+/#", "a/b")).toBe(true);
});

test("values are substituted once: an identity that reads %c is not replaced again by the client's chosen id", () => {
  // A token's subject is whatever its issuer signed; the client id is whatever the client sends.
  const acl = { device: { publish: ["devices/%u/#"], subscribe: [], deny: { publish: ["devices/%u/locked"], subscribe: [] } } };
  const publish = (user: string, clientId: string, topic: string) => decide(rules(acl, "publish", ["device"], user, clientId), topic);
  expect(publish("%c", "#", "devices/sensor-2/temp")).toBe(false);
  expect(publish("%c", "sensor-2", "devices/sensor-2/temp")).toBe(false);
  expect(publish("%c", "sensor-2", "devices/%c/temp")).toBe(true);
  expect(publish("%c", "sensor-2", "devices/%c/locked")).toBe(false);
  // Nor is a client id that reads %u replaced by the identity.
  const byClient = { device: { publish: ["clients/%c/%u"], subscribe: [] } };
  expect(decide(rules(byClient, "publish", ["device"], "alice", "%u"), "clients/alice/alice")).toBe(false);
  expect(decide(rules(byClient, "publish", ["device"], "alice", "%u"), "clients/%u/alice")).toBe(true);
});
