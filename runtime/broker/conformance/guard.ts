/**
 * Watches one connection as aedes reads it: sizes and the CONNECT's protocol level on the bytes
 * (`FrameScanner`), the rules on each parsed packet (`violation`, `refusal`) before aedes handles it.
 * A protocol violation closes the connection [MQTT-4.8.0-1], a refused CONNECT gets its CONNACK return
 * code, and nothing after either is processed [MQTT-3.1.4-5].
 */
import type { EventEmitter } from "node:events";
import type { Client } from "aedes";
import mqttPacket, { type Packet } from "mqtt-packet";
import type { Logger } from "../../log";
import { FrameScanner } from "./frames";
import { ConnackCode, refusal, violation } from "./rules";
import { combineDuplicates, type CombinedSubacks } from "./suback";

/** What aedes keeps on a client (not in its typings): mqtt-packet's parser, whose "packet"s it handles. */
interface ClientParser {
  _parser?: EventEmitter;
}

export function guard(client: Client, maxPacketBytes: number, log: Logger, combined: CombinedSubacks): void {
  const conn = client.conn as unknown as EventEmitter & NodeJS.WritableStream & { destroy(): void };
  const parser = (client as unknown as ClientParser)._parser;
  const [enqueue] = parser?.listeners("packet") ?? [];
  if (!parser || !enqueue) {
    log.error("MQTT conformance checks not installed: aedes has no packet parser where expected");
    return;
  }
  let closing = false;
  const close = (reason: string) => {
    closing = true;
    log.debug("MQTT client disconnected", { client: client.id, reason });
    conn.destroy();
  };
  /** CONNACK with a refusal, then close [MQTT-3.2.2-5]; nothing the client sent after is processed. */
  const refuse = (returnCode: number, reason: string) => {
    closing = true;
    log.debug("MQTT connection refused", { returnCode, reason });
    conn.write(mqttPacket.generate({ cmd: "connack", returnCode, sessionPresent: false }), () => conn.destroy());
  };

  // aedes reads with read(); a "data" listener sees each chunk as it is read, without changing the flow.
  const scanner = new FrameScanner(maxPacketBytes);
  const onData = (chunk: Buffer) => {
    if (closing) return;
    const problem = scanner.feed(chunk);
    if (!problem) return;
    if ("tooLarge" in problem) {
      log.warn("MQTT packet too large", { client: client.id, bytes: problem.tooLarge, maxPacketBytes });
      close(`packet of ${problem.tooLarge} bytes is over broker.maxPacketBytes`);
    } else {
      conn.off("data", onData);
      refuse(ConnackCode.unacceptableProtocolVersion, `[MQTT-3.1.2-2] protocol level ${problem.protocolLevel}`);
    }
  };
  conn.on("data", onData);

  parser.removeListener("packet", enqueue as (...args: unknown[]) => void);
  parser.on("packet", function (this: unknown, packet: Packet) {
    if (closing) return;
    const wrong = violation(packet);
    if (wrong) return close(wrong);
    if (packet.cmd === "connect") {
      const code = refusal(packet);
      if (code !== undefined) return refuse(code, "[MQTT-3.1.3-8] empty client identifier without a clean session");
    } else if (packet.cmd === "subscribe") {
      combineDuplicates(client, packet, combined);
    } else if (packet.cmd === "publish") {
      // [MQTT-3.3.1-3] DUP on the way out says whether that copy is a resend, not whether this one was
      // (aedes would pass it on to subscribers, and keep it on the retained message).
      packet.dup = false;
    }
    enqueue.call(this, packet);
  });
}
