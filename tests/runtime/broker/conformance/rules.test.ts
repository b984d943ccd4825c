/** The MQTT 3.1.1 rules of runtime/broker/conformance/rules.ts, and the frame scanner's basics, as pure functions (the broker side: tests/integration/broker/conformance). */
import { describe, expect, test } from "bun:test";
import mqttPacket, { type Packet } from "mqtt-packet";
import { FrameScanner, isTopicFilter, isTopicName, refusal, violation } from "../../../../runtime/broker/conformance";
import { connectBytes, frame, str } from "../../../helpers/raw-mqtt";

/** Parses bytes as mqtt-packet does for aedes. */
function parse(bytes: Buffer): Packet {
  const parser = mqttPacket.parser();
  let packet: Packet | undefined;
  parser.on("packet", (p) => (packet = p));
  parser.on("error", (err) => {
    throw err;
  });
  parser.parse(bytes);
  if (!packet) throw new Error("no packet parsed");
  return packet;
}

describe("topic names and filters", () => {
  test("[MQTT-4.7.3-1] [MQTT-3.3.2-2] [MQTT-1.5.3-2] a topic name is non-empty, without wildcards or U+0000", () => {
    expect(["a", "a/b", "/", "a//b", "$SYS/x", "\uFEFFa"].every(isTopicName)).toBe(true);
    expect(["", "a/+", "a/#", "#", "a\u0000b", "a\uFFFDb"].some(isTopicName)).toBe(false);
  });

  test("[MQTT-4.7.1-2] [MQTT-4.7.1-3] wildcards occupy whole levels, # only the last", () => {
    expect(["#", "+", "a/#", "+/+", "a/+/b", "/+", "+/", "a//#"].every(isTopicFilter)).toBe(true);
    for (const filter of ["", "a#", "a/#/b", "#/a", "a+", "a/+b", "+a", "++", "a/b#", "a\u0000", "a\uFFFD"]) {
      expect([filter, isTopicFilter(filter)]).toEqual([filter, false]);
    }
  });
});

describe("violation", () => {
  test("accepts well-formed packets", () => {
    const ok: Array<Record<string, unknown>> = [
      { cmd: "connect", clientId: "c", protocolVersion: 4, protocolId: "MQTT", clean: true, keepalive: 0, username: "u", password: Buffer.from("p") },
      { cmd: "publish", topic: "a/b", payload: "x", qos: 1, messageId: 1 },
      { cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "a/+", qos: 1 }] },
      { cmd: "unsubscribe", messageId: 1, unsubscriptions: ["a/#"] },
      { cmd: "puback", messageId: 1 },
      { cmd: "pubrel", messageId: 1 },
      { cmd: "pingreq" },
      { cmd: "disconnect" },
    ];
    for (const p of ok) expect([p.cmd, violation(parse(mqttPacket.generate(p as unknown as Packet)))]).toEqual([p.cmd, undefined]);
  });

  test("names the clause a packet breaks", () => {
    const cases: Array<[Buffer, string]> = [
      [connectBytes({ will: { topic: "w", qos: 3 } }), "[MQTT-3.1.2-14]"],
      [connectBytes({ password: "p" }), "[MQTT-3.1.2-22]"],
      [connectBytes({ clientId: "a\u0000" }), "[MQTT-3.1.3-4]"],
      [connectBytes({ username: Buffer.from([0xff]) }), "[MQTT-3.1.3-11]"],
      [connectBytes({ will: { topic: "w/#" } }), "[MQTT-3.1.3-10]"],
      [frame(0x32, str("a"), [0, 0], Buffer.from("x")), "[MQTT-2.3.1-1]"],
      [frame(0x38, str("a"), Buffer.from("x")), "[MQTT-3.3.1-2]"],
      [frame(0x30, str("a/+"), Buffer.from("x")), "[MQTT-3.3.2-2]"],
      [frame(0x82, [0, 0], str("a"), [0]), "[MQTT-2.3.1-1]"],
      [frame(0x82, [0, 1], str("a+"), [0]), "[MQTT-4.7.1-2]"],
      [frame(0xa2, [0, 1]), "[MQTT-3.10.3-2]"],
      [frame(0xa2, [0, 1], str("#/a")), "[MQTT-4.7.1-2]"],
      [frame(0xc0, [0]), "PINGREQ with a body"],
      [frame(0x40, [0, 1, 0]), "PUBACK of 3 bytes"],
    ];
    for (const [bytes, clause] of cases) expect(violation(parse(bytes))).toContain(clause);
  });
});

describe("refusal", () => {
  test("[MQTT-3.1.3-8] an empty client id needs a clean session (and MQTT 3.1 allows none)", () => {
    expect(refusal(parse(connectBytes({ clientId: "", clean: false })) as never)).toBe(2);
    expect(refusal(parse(connectBytes({ clientId: "", clean: true, protocolName: "MQIsdp", level: 3 })) as never)).toBe(2);
    expect(refusal(parse(connectBytes({ clientId: "", clean: true })) as never)).toBeUndefined();
    expect(refusal(parse(connectBytes({ clientId: "x", clean: false })) as never)).toBeUndefined();
  });
});

describe("FrameScanner", () => {
  /** Feeds the bytes one at a time (every split point) and returns the first problem. */
  const byteByByte = (scanner: FrameScanner, bytes: Buffer) => {
    for (const b of bytes) {
      const problem = scanner.feed(Uint8Array.of(b));
      if (problem) return problem;
    }
    return undefined;
  };

  test("follows packet boundaries, however the bytes are split", () => {
    const stream = Buffer.concat([connectBytes(), frame(0x30, str("a"), Buffer.alloc(200)), frame(0xc0), frame(0x82, [0, 1], str("a/#"), [1])]);
    expect(new FrameScanner(1024).feed(stream)).toBeUndefined();
    expect(byteByByte(new FrameScanner(1024), stream)).toBeUndefined();
  });

  test("a packet over the limit is caught at its fixed header", () => {
    const big = frame(0x30, str("a"), Buffer.alloc(2000));
    // Only the first 4 bytes: the announced size is enough.
    expect(new FrameScanner(1024).feed(big.subarray(0, 4))).toEqual({ tooLarge: big.length });
    expect(byteByByte(new FrameScanner(1024), Buffer.concat([connectBytes(), big]))).toEqual({ tooLarge: big.length });
    // The limit counts the fixed header: a packet of exactly the limit passes, one byte more does not.
    const exact = frame(0x30, str("a"), Buffer.alloc(1024 - 3 - 3)); // 3 bytes of fixed header, 3 of topic
    expect(exact.length).toBe(1024);
    expect(new FrameScanner(1024).feed(exact)).toBeUndefined();
    expect(new FrameScanner(1023).feed(exact)).toEqual({ tooLarge: 1024 });
  });

  test("[MQTT-3.1.2-2] reports a CONNECT's unsupported protocol level, not its name (mqtt-packet refuses that)", () => {
    expect(byteByByte(new FrameScanner(1024), connectBytes({ level: 6 }))).toEqual({ protocolLevel: 6 });
    expect(new FrameScanner(1024).feed(connectBytes({ protocolName: "MQIsdp", level: 2 }))).toEqual({ protocolLevel: 2 });
    for (const c of [connectBytes({ level: 4 }), connectBytes({ protocolName: "MQIsdp", level: 3 }), connectBytes({ level: 5 }), connectBytes({ level: 0x84 }), connectBytes({ protocolName: "HTTP", level: 9 })]) {
      expect(new FrameScanner(1024).feed(c)).toBeUndefined();
    }
    // Only the first packet is a CONNECT.
    const scanner = new FrameScanner(1024);
    expect(scanner.feed(connectBytes())).toBeUndefined();
    expect(scanner.feed(connectBytes({ level: 6 }))).toBeUndefined();
  });
});
