/** A real MQTT.js client for tests, and a way to wait for messages on it. */
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";

export { eventually } from "./eventually";

export interface Received {
  topic: string;
  payload: Buffer;
  json<T = any>(): T;
}

export interface TestClient extends AsyncDisposable {
  client: MqttClient;
  received: Received[];
  /** Resolves with the first message (already received or future) whose topic matches `predicate`. */
  next(predicate?: (m: Received) => boolean, timeoutMs?: number): Promise<Received>;
  subscribe(filter: string, qos?: 0 | 1 | 2): Promise<number[]>;
  end(): Promise<void>;
}

export async function connectMqtt(url: string, options: IClientOptions = {}): Promise<TestClient> {
  // The message handler is attached before CONNACK: a resumed session's queued messages may come in
  // the same read as CONNACK, and would be acknowledged by MQTT.js but missed by a later listener.
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5_000, ...options });
  const received: Received[] = [];
  const waiters: Array<{ predicate: (m: Received) => boolean; resolve: (m: Received) => void }> = [];
  client.on("message", (topic, payload) => {
    const m: Received = { topic, payload, json: () => JSON.parse(payload.toString()) };
    received.push(m);
    for (const w of [...waiters]) {
      if (w.predicate(m)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  });
  await new Promise<void>((resolve, reject) => {
    const settle = (err?: Error) => {
      client.off("connect", onConnect).off("error", settle).off("close", onClose);
      if (!err) return resolve();
      client.end(true);
      reject(err);
    };
    const onConnect = () => settle();
    const onClose = () => settle(new Error(`connection to ${url} closed before CONNACK`));
    client.on("connect", onConnect).on("error", settle).on("close", onClose);
  });
  const end = () => client.endAsync(true).catch(() => {});
  return {
    client,
    received,
    next(predicate = () => true, timeoutMs = 5_000) {
      const already = received.find(predicate);
      if (already) return Promise.resolve(already);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no MQTT message within ${timeoutMs} ms`)), timeoutMs);
        waiters.push({ predicate, resolve: (m) => (clearTimeout(timer), resolve(m)) });
      });
    },
    async subscribe(filter, qos = 1) {
      const granted = await client.subscribeAsync(filter, { qos });
      return granted.map((g) => g.qos);
    },
    end,
    [Symbol.asyncDispose]: end,
  };
}

/**
 * One round trip on the client's connection: an UNSUBSCRIBE of a filter it never subscribed to (its
 * session is left as it was), answered by UNSUBACK. The broker writes to a connection in order, so all
 * it wrote this client before it handled the UNSUBSCRIBE has arrived by then. Wait first for the
 * broker's signal of what must have been written (tests/helpers/broker-reports.ts).
 */
export async function roundTrip(client: MqttClient): Promise<void> {
  await client.unsubscribeAsync(`round-trip/${crypto.randomUUID()}`);
}
