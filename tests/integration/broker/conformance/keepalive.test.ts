/**
 * MQTT 3.1.1 §3.1.2.10 keep-alive and §3.12 PINGREQ/PINGRESP, on a real platform. The clients
 * (keep-alive 1 s) all start together and are watched for 2.4 s, so the file takes that long once.
 * The watch is a window on purpose: that a connection stays open shows only as time passing.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { uniqueId, useBroker, type RawClient } from "../../../helpers/raw-mqtt";

const broker = useBroker();
const WATCH_MS = 2_400;

let silent: { client: RawClient; closedAfterMs: Promise<number> };
let will: Promise<string>;
let pinging: RawClient;
let publishing: RawClient;
let noKeepAlive: RawClient;
let watched: Promise<void>;

/** Sends a packet every 600 ms (under the 1 s keep-alive) until the watch ends. */
function every600ms(c: RawClient, send: () => void): void {
  const timer = setInterval(() => (c.closed ? clearInterval(timer) : send()), 600);
  setTimeout(() => clearInterval(timer), WATCH_MS);
}

beforeAll(async () => {
  const willTopic = `keepalive/will/${uniqueId()}`;
  const willSub = await broker.subscriber(willTopic);
  will = willSub.next("publish", 5_000).then((p) => p.payload.toString());

  const started = Date.now();
  const client = await broker.session({ keepalive: 1, will: { topic: willTopic, payload: Buffer.from("timed out"), qos: 0, retain: false } });
  silent = { client, closedAfterMs: client.waitClosed(5_000).then(() => Date.now() - started) };

  pinging = await broker.session({ keepalive: 1 });
  every600ms(pinging, () => pinging.send({ cmd: "pingreq" }));
  publishing = await broker.session({ keepalive: 1 });
  every600ms(publishing, () => publishing.send({ cmd: "publish", topic: `keepalive/traffic/${uniqueId()}`, payload: "x", qos: 0 }));
  noKeepAlive = await broker.session({ keepalive: 0 });
  watched = Bun.sleep(WATCH_MS);
});

describe("keep-alive", () => {
  test("[MQTT-3.1.2-24] no packet within 1.5 × the keep-alive: the broker disconnects the client as if the network failed", async () => {
    const ms = await silent.closedAfterMs;
    expect(ms).toBeGreaterThanOrEqual(1_400);
    expect(ms).toBeLessThan(2_500);
    // As if the network failed: the will is published.
    expect(await will).toBe("timed out");
  });

  test("[MQTT-3.1.2-23] [MQTT-3.12.4-1] PINGREQ within the keep-alive keeps the connection open, each answered by a PINGRESP", async () => {
    await watched;
    expect(pinging.closed).toBe(false);
    const pings = pinging.received.filter((p) => p.cmd === "pingresp").length;
    expect(pings).toBeGreaterThanOrEqual(3);
  });

  test("[MQTT-3.1.2-24] any control packet counts as activity, not only PINGREQ", async () => {
    await watched;
    expect(publishing.closed).toBe(false);
  });

  test("a keep-alive of 0 turns the mechanism off", async () => {
    await watched;
    expect(noKeepAlive.closed).toBe(false);
  });
});
