import { describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { readFileSync, writeFileSync } from "node:fs";
import { EventLogs } from "../../../runtime/loader/logs";
import { tempDir } from "../../helpers/tmp";

describe("EventLogs", () => {
  test("reads a service's log after a position, and its head", () => {
    using dir = tempDir("plinth-logs");
    const db = new Database(dir.join("orders.sqlite"), { create: true, strict: true });
    db.exec("CREATE TABLE _plinth_outbox (seq INTEGER PRIMARY KEY, id TEXT, type TEXT, time TEXT, data TEXT, sent_at TEXT)");
    for (const seq of [1, 2, 3]) db.query("INSERT INTO _plinth_outbox VALUES (?, ?, 'made', 't', ?, NULL)").run(seq, `e${seq}`, JSON.stringify({ seq }));
    db.close();
    const logs = new EventLogs(dir.path, { error: () => {} });
    expect(logs.head("orders")).toBe(3);
    expect(logs.read("orders", 1).map((e) => [e.seq, e.data])).toEqual([
      [2, { seq: 2 }],
      [3, { seq: 3 }],
    ]);
    expect(logs.head("absent")).toBe(0);
    logs.close();
  });

  test("a log that cannot be read (a damaged page) reads as none, logged once, instead of throwing into the catch-up", () => {
    using dir = tempDir("plinth-logs");
    const file = dir.join("orders.sqlite");
    const db = new Database(file, { create: true, strict: true });
    db.exec("CREATE TABLE _plinth_outbox (seq INTEGER PRIMARY KEY, id TEXT, type TEXT, time TEXT, data TEXT, sent_at TEXT)");
    const insert = db.query("INSERT INTO _plinth_outbox VALUES (?, 'e', 'made', 't', ?, NULL)");
    db.transaction(() => {
      for (let seq = 1; seq <= 2_000; seq++) insert.run(seq, JSON.stringify({ pad: "x".repeat(200) }));
    })();
    db.close();
    const bytes = readFileSync(file);
    const page = Math.floor(bytes.length / 4096 / 2);
    bytes.set(crypto.getRandomValues(new Uint8Array(4096)), page * 4096);
    writeFileSync(file, bytes);

    const errors: string[] = [];
    const logs = new EventLogs(dir.path, { error: (msg) => errors.push(msg) });
    expect(logs.read("orders", 0, 5_000)).toEqual([]);
    expect(logs.read("orders", 0, 5_000)).toEqual([]);
    expect(errors).toEqual(["a service's event log cannot be read"]);
    logs.close();
  });
});
