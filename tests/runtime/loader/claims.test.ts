import { describe, expect, test } from "bun:test";
import { PlinthError } from "../../../runtime/errors";
import { NameClaims } from "../../../runtime/loader/claims";

const outcome = (p: Promise<void>) =>
  p.then(
    () => "ok",
    (e: PlinthError) => e.code,
  );

describe("NameClaims", () => {
  test("waits until every plugin has loaded or failed, then the first in load order wins", async () => {
    const claims = new NameClaims(["builtin:platform", "plugins/a.ts", "plugins/b.ts", "plugins/c.ts"]);
    let decided = false;
    // the later plugin loads first: it must not win just by being quick
    const c = outcome(claims.claim(3, "orders")).finally(() => (decided = true));
    // NameClaims has no timers: once the microtasks queued so far have run (by the next macrotask), it decided all it could.
    await new Promise((resolve) => setImmediate(resolve));
    expect(decided).toBe(false);
    const a = outcome(claims.claim(1, "orders"));
    claims.failed(2);
    const platform = outcome(claims.claim(0, "platform"));
    expect(await Promise.all([platform, a, c])).toEqual(["ok", "ok", "PLT_PLUGIN_DUPLICATE"]);
  });

  test("the duplicate's error names the plugin that has the name", async () => {
    const claims = new NameClaims(["plugins/one.ts", "plugins/two.ts"]);
    const first = claims.claim(0, "x");
    const err = await claims.claim(1, "x").catch((e: PlinthError) => e);
    await first;
    expect(err).toBeInstanceOf(PlinthError);
    expect((err as PlinthError).message).toBe('service name "x" is already taken by plugins/one.ts');
  });

  test("a failure reported after a claim changes nothing", async () => {
    const claims = new NameClaims(["a", "b"]);
    const a = outcome(claims.claim(0, "a"));
    claims.failed(0);
    claims.failed(1);
    expect(await a).toBe("ok");
  });

  test("with no plugins nothing waits", async () => {
    const claims = new NameClaims([]);
    expect(claims).toBeInstanceOf(NameClaims);
  });
});
