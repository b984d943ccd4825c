/**
 * The broker store's group commit (runtime/broker/persistence/commit.ts): a write's promise settles
 * once another connection can read it, the writes of one event-loop round share one COMMIT, and a
 * failure rejects what it undid.
 */
import { afterAll, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { GroupCommit } from "../../../../runtime/broker/persistence/commit";
import { SqlitePersistence } from "../../../../runtime/broker/persistence/sqlite";
import { tempDir } from "../../../helpers/tmp";

const dir = tempDir("plinth-broker-commit");
afterAll(() => dir[Symbol.dispose]());
let files = 0;

/** A WAL database with table t, its group commit counting COMMITs, and a second connection to read it. */
function open() {
  const file = dir.join(`${++files}.sqlite`);
  const db = new Database(file, { create: true, strict: true });
  db.exec("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER)");
  let commits = 0;
  const exec = db.exec.bind(db);
  db.exec = ((sql: string) => {
    if (sql === "COMMIT") commits++;
    return exec(sql);
  }) as typeof db.exec;
  const reader = new Database(file, { readonly: true });
  const seen = () => (reader.query("SELECT x FROM t ORDER BY x").all() as Array<{ x: number }>).map((r) => r.x);
  const insert = db.query("INSERT INTO t (x) VALUES (?)");
  return { db, group: new GroupCommit(db), seen, insert, commits: () => commits };
}

test("a write's promise settles once another connection reads it, not before", async () => {
  const { group, seen, insert } = open();
  const written = group.write(() => insert.run(1));
  expect(seen()).toEqual([]);
  const order: string[] = [];
  await written.then(() => order.push(`resolved, reader sees ${seen().join()}`));
  expect(order).toEqual(["resolved, reader sees 1"]);
});

test("the writes of one round share one COMMIT; the next round commits on its own", async () => {
  const { group, seen, insert, commits } = open();
  await Promise.all(Array.from({ length: 100 }, (_, i) => group.write(() => insert.run(i))));
  expect(commits()).toBe(1);
  expect(seen()).toHaveLength(100);
  await group.write(() => insert.run(100));
  expect(commits()).toBe(2);
});

test("a read made while writes are pending settles after they commit", async () => {
  const { group, seen, insert } = open();
  void group.write(() => insert.run(7));
  const read = await group.read(() => "value");
  expect([read, seen()]).toEqual(["value", [7]]);
  // Nothing pending: at once.
  expect(await group.read(() => 1)).toBe(1);
});

test("a write that throws rejects alone; its savepoint undoes it and the others commit", async () => {
  const { db, group, seen, insert } = open();
  const failing = db.transaction(() => {
    insert.run(2);
    throw new Error("refused");
  });
  const results = await Promise.allSettled([group.write(() => insert.run(1)), group.write(failing), group.write(() => insert.run(3))]);
  expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
  expect(seen()).toEqual([1, 3]);
});

test("a transaction rolled back under the group rejects every write of that group; the next group works", async () => {
  const { db, group, seen, insert } = open();
  const first = group.write(() => insert.run(1));
  const rolledBack = group.write(() => db.exec("ROLLBACK"));
  const results = await Promise.allSettled([first, rolledBack]);
  expect(results.map((r) => r.status)).toEqual(["rejected", "rejected"]);
  expect(seen()).toEqual([]);
  await group.write(() => insert.run(2));
  expect(seen()).toEqual([2]);
});

test("a closed database rejects, never throws", async () => {
  const { db, group, insert } = open();
  db.close();
  await expect(group.write(() => insert.run(1))).rejects.toThrow();
  await expect(group.read(() => insert.run(1))).rejects.toThrow();
});

test("the store closed: its streams fail and its methods reject, none throws (a client connecting during shutdown)", async () => {
  const store = new SqlitePersistence({ file: dir.join("closed.sqlite") });
  await store.setup({ id: "b" });
  await store.destroy();
  const failure = (stream: NodeJS.ReadableStream) => new Promise<Error>((resolve) => stream.once("error", resolve).resume());
  for (const stream of [store.outgoingStream({ id: "c" }), store.createRetainedStreamCombi(["#"]), store.streamWill(), store.getClientList("t")]) {
    expect((await failure(stream)).message).toContain("closed");
  }
  await expect(store.subscriptionsByClient({ id: "c" })).rejects.toThrow();
  await expect(store.cleanIncoming({ id: "c" })).rejects.toThrow();
});

test("the store: a queued publish is committed when its promise resolves, and destroy commits what is pending", async () => {
  const file = dir.join("store.sqlite");
  const store = new SqlitePersistence({ file });
  await store.setup({ id: "b" });
  const reader = new Database(file, { readonly: true });
  const queued = () => (reader.query("SELECT COUNT(*) AS n FROM outgoing").get() as { n: number }).n;
  const packet = { cmd: "publish", topic: "a", payload: Buffer.from("x"), qos: 1, retain: false, brokerId: "b", brokerCounter: 1 };
  const enqueued = store.outgoingEnqueueCombi([{ clientId: "c" }], packet);
  expect(queued()).toBe(0);
  await enqueued;
  expect(queued()).toBe(1);
  void store.outgoingEnqueueCombi([{ clientId: "c" }], { ...packet, brokerCounter: 2 });
  await store.destroy();
  expect(queued()).toBe(2);
  reader.close();
});
