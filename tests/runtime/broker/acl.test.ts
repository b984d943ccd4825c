import { describe, expect, test } from "bun:test";
import { covers, isBrokerInternal } from "../../../runtime/broker/acl";

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
