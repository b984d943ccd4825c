/** [MQTT-3.3.5-1] The copies of one message handed to a client, told apart from other messages (conformance/copies.ts). */
import { expect, test } from "bun:test";
import { Copies } from "../../../../runtime/broker/conformance/copies";

test("[MQTT-3.3.5-1] a message handed again in the same loop is a copy; another message, or another broker's, is not", () => {
  const copies = new Copies();
  expect(copies.first("b1", 7)).toBe(true);
  expect(copies.first("b1", 7)).toBe(false);
  expect(copies.first("b1", 7)).toBe(false);
  expect(copies.first("b1", 8)).toBe(true);
  expect(copies.first("b2", 7)).toBe(true);
  expect(copies.first("b2", 7)).toBe(false);
});

test("[MQTT-4.3.2-2] a message numbered below one handed earlier is no copy (it waited for the store)", () => {
  const copies = new Copies();
  expect(copies.first("b1", 10)).toBe(true);
  expect(copies.first("b1", 9)).toBe(true);
  expect(copies.first("b1", 1)).toBe(true);
});

test("what was handed is forgotten once the loop is over: the same numbers later are new messages (another broker run, say)", async () => {
  const copies = new Copies();
  expect(copies.first("b1", 3)).toBe(true);
  await Promise.resolve();
  expect(copies.first("b1", 3)).toBe(true);
  expect(copies.first("b1", 3)).toBe(false);
  // Forgotten again after the next checkpoint too (not only the first).
  await Promise.resolve();
  expect(copies.first("b1", 3)).toBe(true);
});
