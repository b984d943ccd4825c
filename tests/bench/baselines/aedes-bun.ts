/** Baseline: bare aedes (the version Plinth embeds) on Plinth's Bun.listen bridge (runtime/broker/tcp.ts), nothing else. */
import { Aedes } from "aedes";
import { transportStats } from "../../../runtime/broker/stream";
import { listenMqtt } from "../../../runtime/broker/tcp";

const aedes = await Aedes.createBroker();
const listener = listenMqtt(
  { hostname: "127.0.0.1", port: 0, maxQueuedBytes: 0, stats: transportStats(), gate: { admit: () => true, release() {} } },
  aedes.handle,
);
console.log(`listening mqtt://127.0.0.1:${listener.port}`);
