/**
 * [MQTT-3.8.4-4] [MQTT-3.8.4-5] [MQTT-3.9.3-1] one SUBACK return code per topic filter of a SUBSCRIBE,
 * duplicates included. aedes answers one code per distinct filter, so a SUBSCRIBE that names a filter
 * twice is handed to it with each filter once, and its SUBACK is sent from here.
 */
import type { Aedes, Client } from "aedes";
import mqttPacket, { type ISubscribePacket } from "mqtt-packet";

/** A SUBSCRIBE whose SUBACK this module sends (it named a filter twice). */
interface CombinedSuback {
  packet: ISubscribePacket;
  messageId: number;
  filters: string[];
  requested: number[];
}

/** SUBSCRIBEs of each client waiting for their SUBACK from here. */
export type CombinedSubacks = WeakMap<Client, CombinedSuback[]>;

/** Sends the SUBACK of each combined SUBSCRIBE once aedes has handled it; returns where they wait. */
export function combinedSubacks(aedes: Aedes): CombinedSubacks {
  const combined: CombinedSubacks = new WeakMap();
  // aedes handled each filter once (the last request wins, as if they came one by one).
  aedes.on("subscribe", (subs, client) => {
    const pending = combined.get(client);
    const i = pending?.findIndex((p) => (p.packet.subscriptions as unknown) === subs) ?? -1;
    if (i < 0) return;
    const { messageId, filters, requested } = pending!.splice(i, 1)[0]!;
    const granted = new Map(subs.map((s) => [s.topic, s.qos as number]));
    const codes = filters.map((filter, j) => (granted.get(filter) === 0x80 ? 0x80 : requested[j]!));
    if (!client.closed) mqttPacket.writeToStream({ cmd: "suback", messageId, granted: codes }, client.conn as unknown as NodeJS.WritableStream);
  });
  return combined;
}

/**
 * A SUBSCRIBE naming a filter more than once: aedes would answer one return code per distinct filter.
 * It gets each filter once (its last request, which is what handling them one by one leaves in
 * effect) and no packet identifier, so aedes sends no SUBACK; the "subscribe" event sends it.
 */
export function combineDuplicates(client: Client, packet: ISubscribePacket, combined: CombinedSubacks): void {
  const filters = packet.subscriptions.map((s) => s.topic);
  const last = new Map(packet.subscriptions.map((s) => [s.topic, s]));
  if (last.size === filters.length) return;
  const entry = { packet, messageId: packet.messageId ?? 0, filters, requested: packet.subscriptions.map((s) => s.qos as number) };
  let pending = combined.get(client);
  if (!pending) combined.set(client, (pending = []));
  pending.push(entry);
  packet.subscriptions = [...last.values()];
  (packet as { messageId?: number }).messageId = undefined;
}
