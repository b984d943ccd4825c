/**
 * Interoperability with Eclipse Mosquitto's command line clients (Debian package mosquitto-clients):
 * retained messages, QoS 1 both ways and a persistent session, between mosquitto_pub/mosquitto_sub,
 * MQTT.js and the platform's broker. .ci/run installs the package; where it could not be installed
 * the tests are skipped, saying so in their names (and CI's summary line counts them as skipped).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { boot, type Booted, ON_MAIN_THREAD, inside } from "../../helpers/boot";
import { connectMqtt, type TestClient } from "../../helpers/mqtt";
import { uniqueId } from "../../helpers/raw-mqtt";

const installed = Boolean(Bun.which("mosquitto_sub") && Bun.which("mosquitto_pub"));
const skip = !installed;
const reason = skip ? " (skipped: mosquitto_sub/mosquitto_pub not installed; apt-get install mosquitto-clients)" : "";

let platform: Booted;
const clients: TestClient[] = [];

beforeAll(async () => {
  if (skip) return;
  platform = await boot({}, {}, ON_MAIN_THREAD);
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.end()));
  await platform?.stop();
});

/** Host, port and protocol options for the mosquitto clients. */
function target(): string[] {
  return ["-h", "127.0.0.1", "-p", String(platform.platform.broker!.port), "-V", "mqttv311"];
}

interface Run {
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a mosquitto client to its end (killed after timeoutMs). */
async function run(cmd: string[], timeoutMs = 4_000): Promise<Run> {
  const proc = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill(), timeoutMs);
  const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  clearTimeout(timer);
  return { exitCode: await proc.exited, stdout, stderr };
}

/** Starts mosquitto_sub; resolves once the broker holds its subscription to `topic`, with a way to wait for its end. */
async function subscribe(topic: string, args: string[], timeoutMs = 4_000): Promise<{ done: Promise<Run> }> {
  // Its output is block-buffered in a pipe, so the broker says when the subscription is in place.
  const aedes = inside(platform).aedes;
  let listener: (subs: Array<{ topic: string }>) => void = () => {};
  const subscribed = new Promise<void>((resolve) => {
    listener = (subs) => subs.some((s) => s.topic === topic) && resolve();
    aedes.on("subscribe", listener);
  });
  // -d prints the protocol exchange (PUBACKs included); messages are "MSG ..." lines.
  const done = run(["mosquitto_sub", ...target(), "-d", "-t", topic, "-F", "MSG %r %q %t %p", ...args], timeoutMs);
  await Promise.race([subscribed, done.then((out) => Promise.reject(new Error(`mosquitto_sub ended before subscribing: ${JSON.stringify(out)}`)))]).finally(() =>
    aedes.off("subscribe", listener),
  );
  return { done };
}

/** The "MSG <retain> <qos> <topic> <payload>" lines mosquitto_sub printed. */
const messages = (out: string) => out.split("\n").filter((l) => l.startsWith("MSG "));

describe("mosquitto-clients", () => {
  test.skipIf(skip)(`[MQTT-3.3.1-5] [MQTT-3.3.1-8] a retained message from mosquitto_pub reaches a later mosquitto_sub, flagged retained${reason}`, async () => {
    const topic = `mosquitto/retained/${uniqueId()}`;
    const pub = await run(["mosquitto_pub", ...target(), "-t", topic, "-m", "kept for later", "-r", "-q", "1"]);
    expect([pub.exitCode, pub.stderr]).toEqual([0, ""]);
    const sub = await run(["mosquitto_sub", ...target(), "-t", topic, "-q", "1", "-C", "1", "-W", "5", "-F", "MSG %r %q %t %p"]);
    expect(sub.exitCode).toBe(0);
    expect(messages(sub.stdout)).toEqual([`MSG 1 1 ${topic} kept for later`]);
  });

  test.skipIf(skip)(`[MQTT-4.3.2-2] a QoS 1 message from mosquitto_pub reaches a subscribed mosquitto_sub at QoS 1, not retained${reason}`, async () => {
    const topic = `mosquitto/qos1/${uniqueId()}`;
    const sub = await subscribe(topic, ["-q", "1", "-C", "1"]);
    const pub = await run(["mosquitto_pub", ...target(), "-t", topic, "-m", "at least once", "-q", "1"]);
    expect(pub.exitCode).toBe(0);
    const out = await sub.done;
    expect(out.exitCode).toBe(0);
    expect(messages(out.stdout)).toEqual([`MSG 0 1 ${topic} at least once`]);
    // mosquitto_sub acknowledged it.
    expect(out.stdout).toContain("sending PUBACK");
  });

  test.skipIf(skip)(`[MQTT-4.3.2-2] mosquitto_pub -q 1 to an MQTT.js subscriber: delivered at QoS 1, acknowledged to mosquitto_pub${reason}`, async () => {
    const topic = `mosquitto/to-mqttjs/${uniqueId()}`;
    const client = await connectMqtt(platform.mqttUrl);
    clients.push(client);
    await client.subscribe(topic, 1);
    const qos = new Promise<number>((resolve) => client.client.on("message", (t, _p, packet) => t === topic && resolve(packet.qos)));
    const pub = await run(["mosquitto_pub", ...target(), "-d", "-t", topic, "-m", "from mosquitto", "-q", "1"]);
    expect(pub.exitCode).toBe(0);
    expect(pub.stdout).toContain("received PUBACK");
    expect((await client.next((m) => m.topic === topic)).payload.toString()).toBe("from mosquitto");
    expect(await qos).toBe(1);
  });

  test.skipIf(skip)(`[MQTT-3.1.2-5] a persistent mosquitto_sub session gets the QoS 1 message published while it was away${reason}`, async () => {
    const topic = `mosquitto/session/${uniqueId()}`;
    const id = uniqueId("mosq");
    // -c: clean session off; -E: leave once subscribed.
    const first = await run(["mosquitto_sub", ...target(), "-t", topic, "-q", "1", "-c", "-i", id, "-E"]);
    expect(first.exitCode).toBe(0);
    const pub = await run(["mosquitto_pub", ...target(), "-t", topic, "-m", "while you were away", "-q", "1"]);
    expect(pub.exitCode).toBe(0);
    const again = await run(["mosquitto_sub", ...target(), "-t", topic, "-q", "1", "-c", "-i", id, "-C", "1", "-W", "5", "-F", "MSG %r %q %t %p"]);
    expect(again.exitCode).toBe(0);
    expect(messages(again.stdout)).toEqual([`MSG 0 1 ${topic} while you were away`]);
  });
});
