/** A real MQTT.js client for tests, and a way to wait for messages on it. */
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";

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

/** Polls `fn` until it returns a truthy value or the time runs out. */
export async function eventually<T>(fn: () => T | Promise<T>, timeoutMs = 5_000, everyMs = 25): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await fn();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    await Bun.sleep(everyMs);
  }
  throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${last}` : ""}`);
}
