/** nestsDeeperThan (runtime/json-depth.ts): how deep a JSON text nests, brackets inside strings not counted. */
import { describe, expect, test } from "bun:test";
import { nestsDeeperThan } from "../../runtime/json-depth";
import { checkProperty, fc } from "../helpers/property";

/** The nesting of a parsed value: arrays and objects count one level each. */
function depth(v: unknown): number {
  if (Array.isArray(v)) return 1 + Math.max(0, ...v.map(depth));
  if (typeof v === "object" && v !== null) return 1 + Math.max(0, ...Object.values(v).map(depth));
  return 0;
}

const nested = (n: number, open = "[", close = "]") => open.repeat(n) + close.repeat(n);

describe("nestsDeeperThan", () => {
  test("exactly max levels is not deeper; max + 1 is, for arrays, objects and both mixed", () => {
    expect(nestsDeeperThan(nested(3), 3)).toBe(false);
    expect(nestsDeeperThan(nested(4), 3)).toBe(true);
    expect(nestsDeeperThan('{"a":{"b":{"c":1}}}', 3)).toBe(false);
    expect(nestsDeeperThan('{"a":{"b":{"c":{}}}}', 3)).toBe(true);
    expect(nestsDeeperThan('[{"a":[{}]}]', 3)).toBe(true);
    expect(nestsDeeperThan('[{"a":[1]}]', 3)).toBe(false);
  });

  test("depth is nesting, not the count of brackets: siblings do not add up", () => {
    expect(nestsDeeperThan("[[1],[2],[3],[4],[5]]", 2)).toBe(false);
    expect(nestsDeeperThan('[{"a":1},{"b":2},{"c":[3]}]', 2)).toBe(true);
    expect(nestsDeeperThan(`[${Array(50).fill("[]").join(",")}]`, 2)).toBe(false);
  });

  test("brackets inside strings do not count, escaped quotes and backslashes included", () => {
    expect(nestsDeeperThan(JSON.stringify(["[[[[{{{{"]), 1)).toBe(false);
    expect(nestsDeeperThan(JSON.stringify({ k: 'say \\"[[[[\\" and \\\\' }), 1)).toBe(false);
    expect(nestsDeeperThan(JSON.stringify(["\\", [[1]]]), 2)).toBe(true); // a string that ends in a backslash
    expect(nestsDeeperThan(JSON.stringify(['"', "[[[", '\\"']), 1)).toBe(false);
    expect(nestsDeeperThan(JSON.stringify({ "[[[[": 1 }), 1)).toBe(false);
  });

  test("a text shorter than max, or with no more than max brackets, is never deeper", () => {
    expect(nestsDeeperThan("", 0)).toBe(false);
    expect(nestsDeeperThan("[", 1)).toBe(false);
    expect(nestsDeeperThan("[", 0)).toBe(true);
    expect(nestsDeeperThan("[[", 1)).toBe(true);
    expect(nestsDeeperThan("[]", 1)).toBe(false);
    expect(nestsDeeperThan('"[[[[[[[[[[[[[[["', 3)).toBe(false);
  });

  test("malformed text is left to the parser: an unclosed string ends the count, closers may go below zero", () => {
    expect(nestsDeeperThan('["unclosed [[[[[[', 2)).toBe(false);
    expect(nestsDeeperThan('[[["unclosed', 2)).toBe(true);
    expect(nestsDeeperThan("]]]]][[[", 2)).toBe(false);
    expect(nestsDeeperThan("[[[]]][[[[", 3)).toBe(true);
  });

  test("very deep texts are answered without recursion, and long strings cost little", () => {
    expect(nestsDeeperThan(nested(1_000_000), 999_999)).toBe(true);
    expect(nestsDeeperThan(nested(1_000_000), 1_000_000)).toBe(false);
    const long = JSON.stringify(["x".repeat(5_000_000) + "[".repeat(1000), [[1]]]);
    const started = performance.now();
    expect(nestsDeeperThan(long, 3)).toBe(false);
    expect(nestsDeeperThan(long, 2)).toBe(true);
    expect(performance.now() - started).toBeLessThan(500);
  });
});

test("generated JSON: deeper than max exactly when the parsed value nests deeper", async () => {
  const text = fc.oneof(
    fc.jsonValue({ maxDepth: 8 }),
    fc.array(fc.constantFrom("[", "{", "]", "}", '"', "\\", "a", ":", ","), { maxLength: 30 }).map((cs) => [cs.join("")]),
  );
  const runs = await checkProperty("json-depth", { runs: 2_000, ms: 1_500 }, [text, fc.integer({ min: 0, max: 10 })], async (value, max) => {
    const json = JSON.stringify(value);
    expect(nestsDeeperThan(json, max), `${json} max ${max}`).toBe(depth(value) > max);
  });
  expect(runs).toBeGreaterThan(100);
});
