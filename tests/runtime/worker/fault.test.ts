/** What a plugin's failure may say outside the log: one line, never source, frames or paths. */
import { describe, expect, test } from "bun:test";
import { describeThrown, summarize } from "../../../runtime/worker/fault";

describe("summarize (Bun's text of a worker's uncaught error)", () => {
  test("keeps the message line of an Error thrown from a timer", () => {
    const text = `1 | export default {};\n2 | setTimeout(() => { throw new Error("boom"); }, 0);\n                                ^\nerror: boom\n      at <anonymous> (/srv/plugins/orders.ts:2:30)\n`;
    expect(summarize(text)).toBe("boom");
  });

  test("keeps a named error's line as it is", () => {
    expect(summarize(`3 |   x.y();\n      ^\nTypeError: undefined is not an object (evaluating 'x.y')\n      at f (/a/b.ts:3:3)\n`)).toBe(
      "TypeError: undefined is not an object (evaluating 'x.y')",
    );
  });

  test("a thrown string is its own line; a long one is cut", () => {
    expect(summarize("a plain string")).toBe("a plain string");
    expect(summarize("x".repeat(500))).toBe(`${"x".repeat(200)}…`);
  });

  test("nothing but source and frames: a generic line", () => {
    expect(summarize("1 | x\n  ^\n      at f (/a.ts:1:1)\n")).toBe("unknown error");
  });
});

describe("describeThrown (for the log) never throws", () => {
  test.each([
    ["a string", "s", "s"],
    ["null", null, "null"],
    ["undefined", undefined, "undefined"],
    ["a Symbol", Symbol("x"), "Symbol(x)"],
    ["a number", 42, "42"],
  ])("%s", (_name, value, text) => {
    expect(describeThrown(value)).toBe(text);
  });

  test("an Error gives its stack; objects without a usable toString give their type", () => {
    expect(describeThrown(new Error("e"))).toContain("Error: e");
    expect(describeThrown(Object.create(null))).toBe("thrown value of type object ([object Object])");
    const hostile = { toString: () => { throw new Error("no"); } };
    expect(describeThrown(hostile)).toBe("thrown value of type object ([object Object])");
    const revoked = Proxy.revocable({}, {});
    revoked.revoke();
    expect(describeThrown(revoked.proxy)).toStartWith("thrown value of type object");
  });
});
