/** The QoS a client's subscriptions grant to a topic [MQTT-3.3.5-1], and the filter matching it rests on. */
import { expect, test } from "bun:test";
import { grantedQoS, matches } from "../../../../runtime/broker/conformance/granted";
import { topicMatches } from "../../../../runtime/protocol";

test("[MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-4.7.2-1] filters match topics as the protocol's matcher does", () => {
  const filters = ["#", "+", "a", "a/b", "a/+", "a/#", "+/b", "+/+", "a/+/c", "a/b/#", "/+", "+/", "a//b", "a/+/+", "$SYS/#", "$SYS/+", "+/#", "a/bc", "ab/#"];
  const topics = ["a", "a/b", "a/bc", "ab", "ab/c", "a/b/c", "a/", "/a", "/", "a//b", "b/b", "$SYS", "$SYS/x", "$SYS/x/y", "x/a/b"];
  for (const filter of filters) {
    for (const topic of topics) expect([filter, topic, matches(filter, topic)]).toEqual([filter, topic, topicMatches(filter, topic)]);
  }
});

test("[MQTT-3.3.5-1] the highest QoS among the matching subscriptions; -1 when none matches", () => {
  const subs = { "a/+": { qos: 0 }, "a/#": { qos: 1 }, "a/x": { qos: 2 }, "b/#": { qos: 1 } };
  expect(grantedQoS(subs, "a/x")).toBe(2);
  expect(grantedQoS(subs, "a/y")).toBe(1);
  expect(grantedQoS(subs, "a/y/z")).toBe(1);
  expect(grantedQoS(subs, "b")).toBe(1);
  expect(grantedQoS(subs, "c")).toBe(-1);
  expect(grantedQoS({}, "a")).toBe(-1);
});
