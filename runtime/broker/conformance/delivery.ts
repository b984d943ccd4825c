/**
 * What a client gets of a message, in place of aedes' own delivery functions (lib/client.js `deliver0`,
 * `deliverQoS`; aedes issue #1074):
 *
 * - [MQTT-3.3.5-1] one copy when several of its subscriptions match, at the highest QoS among them.
 *   aedes calls one delivery function per matching subscription and keeps the first: which one comes
 *   first decided the QoS. A QoS 0 subscription's function sent QoS 0 even when a QoS 1 one matched
 *   too, and `deliverQoS` lowered the QoS to that of a subscription to the topic itself (`a/x` at QoS 0
 *   beside `a/#` at QoS 1 got QoS 0). A copy it dropped was also cleared from a persistent session's
 *   queue, where the SQLite store found the one just queued and took it away from the delivery in
 *   flight ("no such packet": the client was disconnected).
 * - [MQTT-4.3.2-2] [MQTT-4.3.3-2] every message, whatever order messages reach the client in. aedes
 *   took for a copy any message numbered (brokerCounter) no higher than the highest it had delivered
 *   to the client (lib/client.js `dedupe`). A message is numbered when its publish starts and reaches
 *   subscribers only once stored (its retained message, its queued copies), so one that waited for the
 *   store was dropped for every client another message had reached meanwhile: a QoS 1 or 2 message
 *   acknowledged to its publisher, lost. Here copies are told by the loop that hands them (copies.ts).
 * - [MQTT-3.8.4-6] no more than the QoS granted (the highest of the matching filters), also for what a
 *   persistent session had queued (on the authorizeForward hook, which aedes also calls for those).
 * - [MQTT-4.4.0-1] a message a resumed session's queue sent is not sent live too, nor the other way
 *   round (resume.ts).
 * - [MQTT-4.4.0-1] a retained message sent on SUBSCRIBE at QoS 1 or 2 to a persistent session is kept
 *   in its queue until acknowledged, like any other delivery: aedes did not store it, so it was not
 *   sent again when the session resumed, and the client's PUBREC for a QoS 2 one found nothing to
 *   turn into a PUBREL (the client was disconnected).
 *
 * Every delivery is sent here, as aedes' own `deliver0` and `deliverQoS` send them but for the points
 * above.
 */
import type { Aedes, Client } from "aedes";
import AedesPacket from "aedes-packet";
import mqttPacket from "mqtt-packet";
import { Copies } from "./copies";
import { grantedQoS, type Subscriptions } from "./granted";
import { resumptionOf } from "./resume";

/** A PUBLISH on its way to a client, as aedes passes it (an aedes-packet Packet). */
interface Outgoing {
  cmd: "publish";
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  retain: boolean;
  dup: boolean;
  messageId?: number;
  /** Which broker made it, and its number there: the same message to the same client has the same. */
  brokerId?: string | null;
  brokerCounter?: number;
  clientId?: string;
  /** MQTT 5 no local. */
  nl?: boolean;
}

type Deliver = (packet: Outgoing, done: () => void) => void;

/** What aedes keeps on a client (not in its typings) that delivering uses. */
interface ClientState {
  id: string;
  clean: boolean;
  connecting: boolean;
  connected: boolean;
  errored: boolean;
  conn: NodeJS.WritableStream;
  subscriptions: Subscriptions;
  /** The next packet identifier to use. */
  _nextId: number;
  deliver0: Deliver;
  deliverQoS: Deliver;
  waitForDrain(done: (err: Error | null) => void): void;
  emit(event: "error", err: Error): boolean;
}

interface Store {
  outgoingEnqueue(sub: { clientId: string }, packet: Outgoing): Promise<void>;
  outgoingUpdate(client: ClientState, packet: Outgoing): Promise<void>;
  outgoingClearMessageId(client: ClientState, packet: Outgoing): Promise<unknown>;
}

/** aedes-packet's constructor (its typings declare a namespace, not the function it exports). */
const Packet = AedesPacket as unknown as new (original: Outgoing, broker: Aedes) => Outgoing;

const noop = () => {};

/** Caps what aedes forwards at the QoS granted [MQTT-3.8.4-6]. */
export function capForwardedQoS(aedes: Aedes): void {
  const authorizeForward = aedes.authorizeForward;
  aedes.authorizeForward = function (client, packet) {
    const forwarded = authorizeForward.call(this, client, packet);
    if (!forwarded || forwarded.qos === 0) return forwarded;
    const granted = grantedQoS((client as unknown as ClientState).subscriptions, forwarded.topic);
    if (granted >= 0 && granted < forwarded.qos) forwarded.qos = granted as 0 | 1 | 2;
    return forwarded;
  };
}

/**
 * Replaces the client's delivery functions (before it subscribes: aedes takes them at SUBSCRIBE).
 * Both are the same function: a subscription's QoS no longer decides the delivery, the message and
 * all the client's matching subscriptions do.
 */
export function deliverOnce(aedes: Aedes, client: Client): void {
  const c = client as unknown as ClientState;
  const store = (aedes as unknown as { persistence: Store }).persistence;
  const resumption = resumptionOf(client);
  const copies = new Copies();

  // Retained messages sent on SUBSCRIBE come one at a time: aedes pipes them through a stream that
  // hands the next once the last one's `done` came. A turn of the event loop for each (two, with the
  // hop before sending) sent each in a write of its own: 100,000 took 4.6 s, mosquitto 0.45 s. They
  // go on within the turn, RETAINED_BURST of them, then the loop turns (the client's PUBACKs are read,
  // other clients served).
  let burst = 0;
  const soon = <A extends unknown[]>(retained: boolean, fn: (...args: A) => void, ...args: A): void => {
    if (retained && ++burst < RETAINED_BURST) return void process.nextTick(fn, ...args);
    burst = 0;
    setImmediate(fn, ...args);
  };

  const deliver: Deliver = (packet, done) => {
    const id = packet.brokerId;
    const counter = packet.brokerCounter ?? 0;
    // [MQTT-3.3.5-1] another matching subscription's copy, already delivered (retained ones have no id).
    if (id && !copies.first(id, counter)) return void setImmediate(done);
    const granted = packet.qos === 0 ? 0 : grantedQoS(c.subscriptions, packet.topic);
    const qos = granted < 0 ? packet.qos : (Math.min(packet.qos, granted) as 0 | 1 | 2);
    const queued = qos > 0 && !c.clean && !packet.retain;
    // [MQTT-4.4.0-1] a resumed session's queue may have sent it already (resume.ts).
    if (queued && id === aedes.id && !resumption.takeLive(counter)) return void setImmediate(done);
    const forwarded = packet.clientId === c.id && packet.nl ? null : aedes.authorizeForward(client, packet as never);
    if (!forwarded) {
      // Not for this client after all: what was queued for it goes (a retained one was not queued).
      if (queued) store.outgoingClearMessageId(c, packet).then(noop, noop);
      return void setImmediate(done);
    }
    soon(packet.retain && !id, send, forwarded as unknown as Outgoing, qos, done);
  };

  function send(forwarded: Outgoing, qos: 0 | 1 | 2, done: () => void): void {
    const packet = new Packet(forwarded, aedes);
    packet.qos = qos;
    const retained = forwarded.retain && !forwarded.brokerId;
    const sent = (err?: unknown) => {
      if (err) c.emit("error", err as Error);
      done();
    };
    const written = (err: Error | null) => soon(retained, sent, err);
    if (qos === 0) return write(c, packet, written);
    packet.messageId = forwarded.messageId || nextMessageId(c);
    const stored = (err?: unknown) => (err ? sent(err) : write(c, packet, written));
    if (c.clean) return write(c, packet, written);
    // A retained message sent on SUBSCRIBE was queued for nobody (live ones were, when published): it
    // is queued here, under the broker id and counter its Packet was given, then marked as sent.
    const queued = packet.retain ? store.outgoingEnqueue({ clientId: c.id }, packet) : Promise.resolve();
    queued.then(() => store.outgoingUpdate(c, packet)).then(() => stored(), stored);
  }

  c.deliver0 = deliver;
  c.deliverQoS = deliver;
}

/** The client's next packet identifier (1 to 65535, in turn), as aedes allocates them. */
function nextMessageId(c: ClientState): number {
  const id = c._nextId;
  c._nextId = id >= 65535 ? 1 : id + 1;
  return id;
}

/** Retained messages sent on SUBSCRIBE in one turn of the event loop, at most. */
const RETAINED_BURST = 256;

/**
 * Writes a packet as aedes does (lib/write.js): waits for "drain" when the connection's buffer is
 * full. `done` is called at once (aedes calls it on the next turn: the caller decides, see `soon`).
 */
function write(c: ClientState, packet: Outgoing, done: (err: Error | null) => void): void {
  let error: Error | null = null;
  if (c.connecting || c.connected) {
    try {
      if (!mqttPacket.writeToStream(packet as never, c.conn) && !c.errored) return c.waitForDrain(done);
    } catch {
      error = new Error("packet received not valid");
    }
  } else {
    error = new Error("connection closed");
  }
  done(error);
}
