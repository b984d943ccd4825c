/**
 * An MQTT 3.1.1 subscriber on a poor link: a raw socket that reads one packet at a time and
 * acknowledges each QoS 1 PUBLISH `delayMs` later, reading nothing in between (the kernel's buffers
 * fill up and the broker's queue towards it grows).
 */
import { createConnection, type Socket } from "node:net";
import mqttPacket, { type IPublishPacket, type Packet } from "mqtt-packet";
import { uniqueId } from "./raw-mqtt";

export interface SlowSubscriber extends AsyncDisposable {
  /** PUBLISH packets read so far, in order. */
  readonly received: IPublishPacket[];
  /** The broker closed the connection (a slow consumer), or we did. */
  readonly closed: boolean;
  destroy(): void;
}

export async function slowSubscriber(url: string, filter: string, delayMs = 2): Promise<SlowSubscriber> {
  const { hostname, port } = new URL(url);
  const socket: Socket = createConnection({ host: hostname, port: Number(port) });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  socket.on("error", () => {});
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const packets: Packet[] = [];
  const received: IPublishPacket[] = [];
  let closed = false;
  let waiting: (() => void) | null = null;
  parser.on("packet", (p) => packets.push(p));
  socket.on("data", (chunk: Buffer) => {
    socket.pause();
    parser.parse(chunk);
    waiting?.();
  });
  socket.on("close", () => {
    closed = true;
    waiting?.();
  });
  const send = (p: Record<string, unknown>) => socket.write(mqttPacket.generate(p as unknown as Packet));
  const read = async (): Promise<Packet | null> => {
    while (packets.length === 0) {
      if (closed) return null;
      await new Promise<void>((resolve) => {
        waiting = resolve;
        socket.resume();
      });
      waiting = null;
    }
    return packets.shift()!;
  };
  send({ cmd: "connect", protocolId: "MQTT", protocolVersion: 4, clean: true, keepalive: 0, clientId: uniqueId("slow") });
  if ((await read())?.cmd !== "connack") throw new Error("no CONNACK");
  send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: filter, qos: 1 }] });
  if ((await read())?.cmd !== "suback") throw new Error("no SUBACK");
  void (async () => {
    for (let p = await read(); p; p = await read()) {
      if (p.cmd !== "publish") continue;
      received.push(p);
      await Bun.sleep(delayMs);
      if (p.qos > 0) send({ cmd: "puback", messageId: p.messageId });
    }
  })();
  const destroy = () => {
    socket.destroy();
  };
  return {
    received,
    get closed() {
      return closed;
    },
    destroy,
    [Symbol.asyncDispose]: async () => destroy(),
  };
}
