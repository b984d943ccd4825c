/**
 * [MQTT-4.3.2-2] A QoS 1 PUBLISH is acknowledged "having accepted ownership of the Application
 * Message": here, once it is stored (the retained message, the queues of the persistent sessions it is
 * for: committed, see persistence/commit.ts) and handed to the connected subscribers. aedes writes the
 * PUBACK first and publishes after (lib/handlers/publish.js), so a crash right after a PUBACK lost the
 * message. A QoS 2 PUBLISH already gets its PUBREC after aedes' publish [MQTT-4.3.3-2].
 *
 * aedes asks authorizePublish before it acknowledges: a QoS 1 PUBLISH from a client is published
 * there, once authorized, and the publish aedes starts after its PUBACK is skipped for that packet.
 */
import type { Aedes, Client } from "aedes";

type Done = (err?: Error | null) => void;
type Publish = (packet: object, client?: Client | Done | null, done?: Done) => void;

export function acknowledgeWhenStored(aedes: Aedes): void {
  /** QoS 1 PUBLISH packets from clients, published already: aedes' own publish of each is skipped once. */
  const published = new WeakSet<object>();
  const broker = aedes as unknown as { publish: Publish };
  const publish = broker.publish.bind(aedes) as Publish;

  const authorizePublish = aedes.authorizePublish;
  aedes.authorizePublish = function (client, packet, callback) {
    authorizePublish.call(this, client, packet, (err) => {
      // A will (no cmd) and the broker's own publishes are not acknowledged to anyone.
      if (err || !client || packet.cmd !== "publish" || packet.qos !== 1) return callback(err);
      publish(packet, client, (err) => {
        if (err) return callback(err);
        published.add(packet);
        callback(null);
      });
    });
  };

  broker.publish = (packet, client, done) => {
    if (!published.delete(packet)) return publish(packet, client, done);
    (typeof client === "function" ? client : done)?.(null);
  };
}
