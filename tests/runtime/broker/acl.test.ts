import { describe, expect, test } from "bun:test";
import { covers } from "../../../runtime/broker/acl";

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
