import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { Inbox } from "../../../runtime/worker/inbox";

let db: Database;
let inbox: Inbox;
beforeEach(() => {
  db = new Database(":memory:", { strict: true });
  inbox = new Inbox(db);
});
afterEach(() => db.close());

describe("Inbox cursors", () => {
  test("within one generation of a source's log the cursor only moves forward", () => {
    inbox.advance("events/orders/#", "orders", 5, "g1");
    inbox.advance("events/orders/#", "orders", 3, "g1");
    expect(inbox.handled("events/orders/#", "orders", 5, "g1")).toBe(true);
    expect(inbox.handled("events/orders/#", "orders", 6, "g1")).toBe(false);
    expect(inbox.cursors()).toEqual([{ subscription: "events/orders/#", source: "orders", seq: 5, generation: "g1" }]);
  });

  test("an event of a new generation is not taken for handled, and moves the cursor into that generation", () => {
    inbox.advance("s", "orders", 10, "g1");
    expect(inbox.handled("s", "orders", 6, "g2")).toBe(false);
    inbox.advance("s", "orders", 6, "g2");
    expect(inbox.cursors()).toEqual([{ subscription: "s", source: "orders", seq: 6, generation: "g2" }]);
    expect(inbox.handled("s", "orders", 6, "g2")).toBe(true);
  });

  test("a cursor from before generations (or an event without one) compares positions only, and adopts the generation it meets", () => {
    db.exec("DROP TABLE _plinth_cursors");
    db.exec("CREATE TABLE _plinth_cursors (subscription TEXT NOT NULL, source TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (subscription, source))");
    db.exec("INSERT INTO _plinth_cursors VALUES ('s', 'orders', 4)");
    inbox = new Inbox(db);
    expect(inbox.handled("s", "orders", 4, "g1")).toBe(true);
    expect(inbox.handled("s", "orders", 4)).toBe(true);
    inbox.advance("s", "orders", 5, "g1");
    inbox.advance("s", "orders", 7);
    expect(inbox.cursors()).toEqual([{ subscription: "s", source: "orders", seq: 7, generation: "g1" }]);
  });
});
