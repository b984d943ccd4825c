/**
 * One connection watched as aedes reads it (conformance/guard.ts), with mqtt-packet's parser standing
 * in for aedes' and an in-memory stream for the socket: what reaches aedes, what the client gets back,
 * and when the connection is closed [MQTT-4.8.0-1] [MQTT-3.1.4-5].
 */
import { expect, test } from "bun:test";
import { EventEmitter } from "node:events";
import { duplexPair } from "node:stream";
import type { Client } from "aedes";
import mqttPacket, { type Packet } from "mqtt-packet";
import { guard } from "../../../../runtime/broker/conformance/guard";
import type { CombinedSubacks } from "../../../../runtime/broker/conformance/suback";
import { createLogger } from "../../../../runtime/log";
import { connectBytes, frame, str } from "../../../helpers/raw-mqtt";

/** A connection as aedes holds it, guarded; `handled` is what reaches aedes' packet handler. */
function guarded(maxPacketBytes = 1024) {
  const [peer, conn] = duplexPair();
  const parser = mqttPacket.parser();
  const handled: Packet[] = [];
  parser.on("packet", (p: Packet) => handled.push(p));
  parser.on("error", () => {});
  const lines: string[] = [];
  const client = { id: "c", conn, _parser: parser } as unknown as Client;
  const combined: CombinedSubacks = new WeakMap();
  guard(client, maxPacketBytes, createLogger({ level: "debug", format: "json", write: (l) => lines.push(l) }), combined);
  // aedes reads after the guard's listener has seen the bytes.
  conn.on("data", (chunk: Buffer) => parser.parse(chunk));
  const answers: Packet[] = [];
  const answerParser = mqttPacket.parser();
  answerParser.on("packet", (p: Packet) => answers.push(p));
  peer.on("data", (chunk: Buffer) => answerParser.parse(chunk));
  const closed = new Promise<void>((resolve) => conn.once("close", () => resolve()));
  /** Sends bytes and waits until the guarded side has read them (or closed). */
  const send = async (...packets: Buffer[]) => {
    const bytes = Buffer.concat(packets);
    const read = new Promise<void>((resolve) => {
      conn.once("data", () => setImmediate(resolve));
      conn.once("close", () => resolve());
    });
    peer.write(bytes);
    await read;
  };
  return { send, handled, answers, closed, conn, lines, combined, client };
}

const publish = (topic: string, qos: 0 | 1, flags = 0) => frame(0x30 | (qos << 1) | flags, str(topic), qos ? [0, 1] : [], Buffer.from("x"));

test("well-formed packets reach aedes as sent", async () => {
  const g = guarded();
  await g.send(connectBytes({ clientId: "c" }), publish("a/b", 1), frame(0xc0));
  expect(g.handled.map((p) => p.cmd)).toEqual(["connect", "publish", "pingreq"]);
  expect(g.conn.destroyed).toBe(false);
});

test("[MQTT-4.8.0-1] a protocol violation closes the connection, and nothing sent after it reaches aedes", async () => {
  const g = guarded();
  await g.send(connectBytes({ clientId: "c" }), frame(0x32, str("a"), [0, 0], Buffer.from("x")), publish("a/b", 0), frame(0xc0));
  await g.closed;
  expect(g.handled.map((p) => p.cmd)).toEqual(["connect"]);
  expect(g.lines.join("\n")).toContain("[MQTT-2.3.1-1]");
});

test("[MQTT-3.1.3-8] [MQTT-3.2.2-5] a refused CONNECT gets its CONNACK return code, then the connection closes; nothing reaches aedes", async () => {
  const g = guarded();
  await g.send(connectBytes({ clientId: "", clean: false }), frame(0xc0));
  await g.closed;
  expect(g.answers).toEqual([expect.objectContaining({ cmd: "connack", returnCode: 2, sessionPresent: false })]);
  expect(g.handled).toEqual([]);
});

test("[MQTT-3.1.2-2] a CONNECT of an unsupported protocol level gets CONNACK 0x01, then the connection closes", async () => {
  const g = guarded();
  await g.send(connectBytes({ level: 6 }));
  await g.closed;
  expect(g.answers).toEqual([expect.objectContaining({ cmd: "connack", returnCode: 1 })]);
  expect(g.handled).toEqual([]);
});

test("a packet over the size limit closes the connection at its header, before its body is sent", async () => {
  const g = guarded(100);
  await g.send(connectBytes({ clientId: "c" }));
  await g.send(Buffer.from([0x30, 0xc8, 0x01])); // a PUBLISH announcing 200 bytes: only its fixed header
  await g.closed;
  expect(g.handled.map((p) => p.cmd)).toEqual(["connect"]);
  expect(g.lines.join("\n")).toContain("packet too large");
});

test("[MQTT-3.3.1-3] an incoming PUBLISH reaches aedes with DUP 0, whatever the client set", async () => {
  const g = guarded();
  await g.send(connectBytes({ clientId: "c" }), publish("a", 1, 0x08));
  const got = g.handled[1] as Packet & { dup: boolean; qos: number };
  expect([got.cmd, got.qos, got.dup]).toEqual(["publish", 1, false]);
});

test("[MQTT-3.8.4-4] a SUBSCRIBE naming a filter twice reaches aedes with each filter once (its last request) and its SUBACK left to suback.ts", async () => {
  const g = guarded();
  await g.send(connectBytes({ clientId: "c" }), frame(0x82, [0, 9], str("a/#"), [0], str("b"), [1], str("a/#"), [2]));
  const sub = g.handled[1] as Packet & { messageId?: number; subscriptions: Array<{ topic: string; qos: number }> };
  expect(sub.subscriptions.map((s) => [s.topic, s.qos])).toEqual([["a/#", 2], ["b", 1]]);
  expect(sub.messageId).toBeUndefined();
  expect(g.combined.get(g.client)!.map((c) => [c.messageId, c.filters, c.requested])).toEqual([[9, ["a/#", "b", "a/#"], [0, 1, 2]]]);
});

test("without aedes' parser where expected, nothing is installed and the error is logged", () => {
  const lines: string[] = [];
  const conn = new EventEmitter();
  guard({ id: "c", conn } as unknown as Client, 1024, createLogger({ level: "debug", format: "json", write: (l) => lines.push(l) }), new WeakMap());
  expect(conn.listenerCount("data")).toBe(0);
  expect(lines.join("\n")).toContain("not installed");
});
