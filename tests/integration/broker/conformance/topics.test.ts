/** MQTT 3.1.1 §4.7 topic names and filters: how they match, on a real platform. */
import { describe, expect, test } from "bun:test";
import { publishFrom, uniqueId, useBroker, type RawClient } from "../../../helpers/raw-mqtt";

// Clients may use `$conformance/#` here (the ACL gives `$` topics only to filters that name them).
// In-memory broker persistence: its retained store, unlike the SQLite one, does not skip `$` topics itself.
const broker = useBroker({
  broker: { persistence: "memory" },
  auth: { mqtt: { acl: { anonymous: { publish: ["#", "$conformance/#"], subscribe: ["#", "$conformance/#"] } } } },
});
const fresh = (root: string) => `${root}/${uniqueId()}`;

/** Publishes from a session of its own; resolves once the broker has handed the message to every subscriber. */
async function publish(topic: string, payload = topic, retain = false): Promise<void> {
  const c = await broker.session();
  const handed = broker.published((p) => p.topic === topic && p.payload.toString() === payload);
  await publishFrom(c, topic, payload, { qos: 1, retain });
  await handed;
  await c.disconnect();
}

/** Topics of the PUBLISH packets received, sorted, up to a PINGRESP (after publish(), all there are). */
async function topicsReceived(c: RawClient): Promise<string[]> {
  await c.ping();
  return c.received.flatMap((p) => (p.cmd === "publish" ? [p.topic] : [])).sort();
}

describe("matching", () => {
  test("[MQTT-4.7.1-2] `#` matches its parent level and any number of levels below", async () => {
    const root = fresh("topics/hash");
    const sub = await broker.subscriber(`${root}/#`);
    for (const t of [root, `${root}/a`, `${root}/a/b/c`, `${root}-sibling`]) await publish(t);
    expect(await topicsReceived(sub)).toEqual([root, `${root}/a`, `${root}/a/b/c`]);
  });

  test("[MQTT-4.7.1-3] `+` matches exactly one level, an empty one included", async () => {
    const root = fresh("topics/plus");
    const sub = await broker.subscriber(`${root}/+/x`);
    for (const t of [`${root}/a/x`, `${root}//x`, `${root}/x`, `${root}/a/b/x`, `${root}/a/x/y`]) await publish(t);
    expect(await topicsReceived(sub)).toEqual([`${root}//x`, `${root}/a/x`]);
  });

  test("[MQTT-4.7.3-4] topics match character for character: no case folding, no normalization, U+FEFF kept [MQTT-1.5.3-3]", async () => {
    const root = fresh("topics/exact");
    const sub = await broker.subscriber(`${root}/Ab`);
    const bom = await broker.subscriber(`${root}/\uFEFFAb`);
    for (const t of [`${root}/Ab`, `${root}/ab`, `${root}/AB`, `${root}/Ab `, `${root}/\uFEFFAb`]) await publish(t);
    expect(await topicsReceived(sub)).toEqual([`${root}/Ab`]);
    expect(await topicsReceived(bom)).toEqual([`${root}/\uFEFFAb`]);
  });

  test("a leading `/` makes an empty first level", async () => {
    const root = uniqueId("topics-slash");
    const sub = await broker.subscriber(`+/${root}`);
    await publish(`/${root}`);
    await publish(root);
    expect(await topicsReceived(sub)).toEqual([`/${root}`]);
  });
});

describe("topics starting with $", () => {
  test("[MQTT-4.7.2-1] filters starting with a wildcard do not match `$` topics; a filter naming the `$` level does", async () => {
    const id = uniqueId();
    const hash = await broker.subscriber("#");
    const plus = await broker.subscriber(`+/${id}`);
    const named = await broker.subscriber(`$conformance/#`);
    await publish(`$conformance/${id}`);
    // (another test leaves retained messages under $conformance/: this one's is known by its topic)
    await named.next("publish", { where: (p) => p.topic === `$conformance/${id}` });
    for (const c of [hash, plus]) {
      const topics = await topicsReceived(c);
      expect(topics.filter((t) => t.startsWith("$"))).toEqual([]);
    }
  });

  test("[MQTT-4.7.2-1] nor do they deliver the retained messages of `$` topics", async () => {
    const topic = `$conformance/retained-${uniqueId()}`;
    await publish(topic, "retained", true);
    const named = await broker.subscriber("$conformance/+");
    await named.next("publish", { where: (p) => p.topic === topic && p.retain });
    for (const filter of ["#", "+/+"]) {
      // Its retained messages all sent by the time those of a `$` sentinel named after it are.
      const sentinel = `$conformance/sentinel-${uniqueId()}`;
      const c = await broker.subscriberSettled(filter, 0, {}, sentinel);
      const topics = await topicsReceived(c);
      expect([filter, topics.filter((t) => t.startsWith("$") && t !== sentinel)]).toEqual([filter, []]);
    }
  });
});
