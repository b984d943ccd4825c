/**
 * The byte stream a client sends, seen by its fixed headers (conformance/frames.ts): a packet over the
 * size limit is reported at its header, wherever the stream is split, and only the first packet's
 * protocol level is looked at [MQTT-3.1.2-2].
 */
import { expect, test } from "bun:test";
import { FrameScanner } from "../../../../runtime/broker/conformance/frames";
import { checkProperty, fc } from "../../../helpers/property";
import { frame, remainingLength, str } from "../../../helpers/mqtt-bytes";
import { connectBytes } from "../../../helpers/raw-mqtt";

/** Feeds `bytes` in pieces cut at `cuts` (offsets); returns the first problem and how many bytes it had seen by then. */
function scan(maxPacketBytes: number, bytes: Buffer, cuts: number[] = []) {
  const scanner = new FrameScanner(maxPacketBytes);
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  let from = 0;
  for (const to of [...at, bytes.length]) {
    if (to <= from) continue;
    const problem = scanner.feed(bytes.subarray(from, to));
    if (problem) return { problem, seen: to };
    from = to;
  }
  return { problem: undefined, seen: bytes.length };
}

test("a stream of packets of any sizes, cut anywhere: the first one over the limit is reported, by its full size, before its body is read", async () => {
  await checkProperty(
    "frames",
    { runs: 300, ms: 3_000 },
    [fc.array(fc.oneof(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 20_000 })), { minLength: 1, maxLength: 8 }), fc.integer({ min: 30, max: 5_000 }), fc.array(fc.nat(), { maxLength: 12 })],
    async (lengths, limit, cuts) => {
      const packets = [connectBytes({ clientId: "c" }), ...lengths.map((n) => frame(0x30, Buffer.alloc(n, 7)))];
      const stream = Buffer.concat(packets);
      const { problem, seen } = scan(limit, stream, cuts);
      const over = packets.findIndex((p) => p.length > limit);
      if (over < 0) return expect(problem).toBeUndefined();
      expect(problem).toEqual({ tooLarge: packets[over]!.length });
      // Reported from its fixed header: nothing of the stream past that header had to be read.
      const start = packets.slice(0, over).reduce((n, p) => n + p.length, 0);
      const header = 1 + remainingLength(packets[over]!.length - 1).length;
      const pieceEnds = [...cuts.map((c) => c % (stream.length + 1)), stream.length].sort((a, b) => a - b);
      expect(seen).toBe(pieceEnds.find((end) => end >= start + header)!);
    },
  );
});

test("the size counts every byte of the remaining length, up to four", () => {
  for (const bodyLength of [127, 128, 16_383, 16_384, 2_097_151, 2_097_152]) {
    const header = Buffer.from([0x30, ...remainingLength(bodyLength)]);
    const size = header.length + bodyLength;
    expect([bodyLength, new FrameScanner(size).feed(header)]).toEqual([bodyLength, undefined]);
    expect([bodyLength, new FrameScanner(size - 1).feed(header)]).toEqual([bodyLength, { tooLarge: size }]);
  }
});

test("packets without a body (PINGREQ, DISCONNECT) keep the boundaries", () => {
  const scanner = new FrameScanner(10);
  expect(scanner.feed(Buffer.concat([frame(0xc0), frame(0xe0), frame(0x30, Buffer.alloc(5))]))).toBeUndefined();
  expect(scanner.feed(frame(0x30, Buffer.alloc(9)))).toEqual({ tooLarge: 11 });
  // A first packet without a body is the first packet: a CONNECT after it is not read for its level.
  expect(new FrameScanner(1024).feed(Buffer.concat([frame(0xc0), connectBytes({ level: 6 })]))).toBeUndefined();
});

test("a fifth byte of remaining length is left to mqtt-packet (malformed): the length ends at the fourth", () => {
  // Four continuation bytes of 0: a length of 0, then 0x01 starts the next packet.
  expect(new FrameScanner(1024).feed(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80, 0x01]))).toBeUndefined();
});

test("[MQTT-3.1.2-2] the protocol level is read wherever the CONNECT is cut, and only the first packet's", () => {
  const bad = connectBytes({ level: 7 });
  for (let cut = 1; cut < bad.length; cut++) {
    expect([cut, scan(1024, bad, [cut]).problem]).toEqual([cut, { protocolLevel: 7 }]);
  }
  // A first packet that is not a CONNECT is not read as one, whatever its bytes.
  const looksLikeConnect = frame(0x30, str("MQTT"), [9]);
  expect(new FrameScanner(1024).feed(Buffer.concat([looksLikeConnect, connectBytes({ level: 9 })]))).toBeUndefined();
  // A protocol name of another length is mqtt-packet's to refuse: no level is reported.
  expect(new FrameScanner(1024).feed(frame(0x10, str("MQT"), [9, 2, 0, 0]))).toBeUndefined();
  // The bridge bit (0x80) is not part of the level.
  expect(new FrameScanner(1024).feed(connectBytes({ level: 0x87 }))).toEqual({ protocolLevel: 7 });
});
