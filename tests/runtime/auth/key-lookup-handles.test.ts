/**
 * The key lookup's database handle: one open file however many keys are looked up, released by
 * close() (the lookup's own and the Authenticator's), so a long-running gateway leaks no handles.
 */
import { expect, test } from "bun:test";
import { readdirSync, readlinkSync } from "node:fs";
import { Value } from "@sinclair/typebox/value";
import { ConfigSchema, type Config } from "../../../config/schema";
import { Authenticator } from "../../../runtime/auth/authenticator";
import { KeyLookup } from "../../../runtime/auth/keys";
import { createKey } from "../../helpers/keys";
import { tempDir } from "../../helpers/tmp";

/** How many of this process's open file descriptors point at `file`. */
function openHandles(file: string): number {
  let count = 0;
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === file) count++;
    } catch {
      // closed while listing
    }
  }
  return count;
}

test.skipIf(process.platform !== "linux")("many lookups hold the auth database open once; close() releases it, and a later lookup opens it again", () => {
  using dir = tempDir();
  const key = createKey(dir.path, ["device"], "meter-1");
  const lookup = new KeyLookup(dir.path);
  expect(openHandles(dir.join("auth.sqlite"))).toBe(0);
  for (let i = 0; i < 5; i++) expect(lookup.find(key)?.sub).toBe("meter-1");
  expect(lookup.find("plk_unknown_key")).toBeNull();
  expect(openHandles(dir.join("auth.sqlite"))).toBe(1);
  lookup.close();
  expect(openHandles(dir.join("auth.sqlite"))).toBe(0);
  expect(lookup.find(key)?.sub).toBe("meter-1");
  expect(openHandles(dir.join("auth.sqlite"))).toBe(1);
  lookup.close();
  expect(openHandles(dir.join("auth.sqlite"))).toBe(0);
});

test.skipIf(process.platform !== "linux")("Authenticator.close releases the auth database", async () => {
  using dir = tempDir();
  const key = createKey(dir.path, ["device"], "meter-1");
  const auth = await Authenticator.create(Value.Default(ConfigSchema, { data: { dir: dir.path } }) as Config);
  expect(auth.verify(key)).toEqual({ sub: "meter-1", roles: ["device"], via: "key" });
  expect(openHandles(dir.join("auth.sqlite"))).toBe(1);
  auth.close();
  expect(openHandles(dir.join("auth.sqlite"))).toBe(0);
});
