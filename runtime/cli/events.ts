/**
 * `plinth events tail <filter>`: prints events live, like mosquitto_sub but
 * one readable line per CloudEvent. MQTT.js is loaded only by this command.
 */
export interface TailOptions {
  filter: string;
  url: string;
  json: boolean;
  /** MQTT password: an API key or a JWT. */
  key?: string;
}

export async function tail(options: TailOptions): Promise<void> {
  const { default: mqtt } = await import("mqtt");
  const client = await mqtt.connectAsync(options.url, {
    reconnectPeriod: 1_000,
    connectTimeout: 5_000,
    ...(options.key ? { username: "plinth-cli", password: options.key } : {}),
  });
  await client.subscribeAsync(options.filter, { qos: 1 });
  console.error(`tailing ${options.filter} on ${options.url} (Ctrl-C to stop)`);
  client.on("message", (topic, payload) => console.log(options.json ? payload.toString() : formatEvent(topic, payload)));
  await new Promise<void>((resolve) => {
    const stop = () => client.end(false, {}, () => resolve());
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}

/** `time  topic  type  id  data` for a CloudEvent; the raw payload for anything else. */
export function formatEvent(topic: string, payload: Buffer): string {
  const text = payload.toString("utf8");
  try {
    const e = JSON.parse(text) as { specversion?: string; time?: string; type?: string; id?: string; data?: unknown };
    if (e.specversion === "1.0") return `${e.time}  ${topic}  ${e.type}  ${e.id}  ${JSON.stringify(e.data)}`;
  } catch {}
  return `${new Date().toISOString()}  ${topic}  ${text}`;
}
