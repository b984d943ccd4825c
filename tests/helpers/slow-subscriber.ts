/**
 * An MQTT 3.1.1 subscriber on a poor link: it reads slowly (the socket paused for `delayMs` per
 * packet received) and acknowledges each QoS 1 delivery `delayMs` after it arrived, so the broker's
 * queue towards it fills and drains in small steps.
 */
import type { IPublishPacket } from "mqtt-packet";
import { rawSession, type RawClient } from "./raw-mqtt";

export interface SlowSubscriber extends AsyncDisposable {
  readonly client: RawClient;
  /** PUBLISH packets received so far. */
  readonly received: number;
}

export async function slowSubscriber(url: string, filter: string, delayMs = 2): Promise<SlowSubscriber> {
  const client = await rawSession(url, { clean: true });
  client.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: filter, qos: 1 }] });
  await client.next("suback");
  let received = 0;
  let seen = 0;
  client.socket.on("data", () => {
    const fresh = client.received.slice(seen);
    seen = client.received.length;
    const publishes = fresh.filter((p): p is IPublishPacket => p.cmd === "publish");
    if (publishes.length === 0) return;
    received += publishes.length;
    client.socket.pause();
    setTimeout(() => {
      if (client.closed) return;
      for (const p of publishes) if (p.qos === 1) client.send({ cmd: "puback", messageId: p.messageId });
      client.socket.resume();
    }, delayMs * publishes.length);
  });
  return {
    client,
    get received() {
      return received;
    },
    [Symbol.asyncDispose]: async () => client.destroy(),
  };
}
