/** runtime/broker/sys.ts on a stand-in for aedes and a hand-driven clock (through the platform: tests/integration/broker/sys.test.ts). */
import { EventEmitter } from "node:events";
import { expect, test } from "bun:test";
import type { Aedes } from "aedes";
import { startSys } from "../../../runtime/broker/sys";
import { transportStats } from "../../../runtime/broker/stream";

class FakeAedes extends EventEmitter {
  connectedClients = 3;
  readonly retained = new Map<string, string>();
  publish(packet: { topic: string; payload: Buffer; retain: boolean; qos: number }, done: () => void) {
    expect(packet.retain).toBe(true);
    expect(packet.qos).toBe(0);
    this.retained.set(packet.topic, packet.payload.toString());
    done();
  }
}

test("publishes retained values at start and on demand; loads are per-minute moving averages", () => {
  const aedes = new FakeAedes();
  const stats = transportStats();
  let now = 1_000_000;
  const sys = startSys(aedes as unknown as Aedes, { intervalMs: 0, version: "9.9.9", stats, now: () => now });
  const value = (topic: string) => aedes.retained.get(`$SYS/broker/${topic}`);
  expect(value("version")).toBe("plinth 9.9.9");
  expect(value("uptime")).toBe("0 seconds");
  expect(value("clients/connected")).toBe("3");
  expect(value("load/messages/received/1min")).toBe("0.00");

  // 600 messages from clients (the runtime's own, client null, do not count) in one minute
  for (let i = 0; i < 600; i++) aedes.emit("publish", {}, { id: "c" });
  aedes.emit("publish", {}, null);
  Object.assign(stats, { publishSent: 1200, droppedQos0: 5, slowConsumers: 1, rejected: 2, bytesSent: 4096 });
  now += 60_000;
  sys.publish();
  expect(value("uptime")).toBe("60 seconds");
  expect(value("messages/received")).toBe("600");
  expect(value("messages/sent")).toBe("1200");
  expect(value("messages/dropped")).toBe("5");
  expect(value("clients/slow")).toBe("1");
  expect(value("clients/rejected")).toBe("2");
  expect(value("bytes/sent")).toBe("4096");
  // one step of 60 s toward 600/min: 600 × (1 − e^(−60/60)), (1 − e^(−60/300)), (1 − e^(−60/900))
  expect(value("load/messages/received/1min")).toBe((600 * (1 - Math.exp(-1))).toFixed(2));
  expect(value("load/messages/received/5min")).toBe((600 * (1 - Math.exp(-0.2))).toFixed(2));
  expect(value("load/messages/received/15min")).toBe((600 * (1 - Math.exp(-60 / 900))).toFixed(2));
  expect(value("load/messages/sent/1min")).toBe((1200 * (1 - Math.exp(-1))).toFixed(2));

  sys.stop();
  aedes.emit("publish", {}, { id: "c" });
  expect(sys.received).toBe(600);
});

test("store/messages/dropped: what the session store dropped from full queues, 0 without a store that counts", () => {
  const aedes = new FakeAedes();
  let dropped = 0;
  const sys = startSys(aedes as unknown as Aedes, { intervalMs: 0, version: "9.9.9", stats: transportStats(), storeDropped: () => dropped });
  expect(aedes.retained.get("$SYS/broker/store/messages/dropped")).toBe("0");
  dropped = 3;
  sys.publish();
  expect(aedes.retained.get("$SYS/broker/store/messages/dropped")).toBe("3");
  sys.stop();

  const without = new FakeAedes();
  startSys(without as unknown as Aedes, { intervalMs: 0, version: "9.9.9", stats: transportStats() }).stop();
  expect(without.retained.get("$SYS/broker/store/messages/dropped")).toBe("0");
});
