/** API keys: the error codes of a refused key, and lookups in a data folder whose auth database is not ready. */
import { expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { KeyLookup } from "../../../runtime/auth/keys";
import { withKeyStore } from "../../../runtime/cli/keys";
import { PlinthError } from "../../../runtime/errors";
import { tempDir } from "../../helpers/tmp";

function thrown(fn: () => unknown): PlinthError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PlinthError);
    return err as PlinthError;
  }
  throw new Error("expected a PlinthError");
}

test("a bad name or role is PLT_BAD_REQUEST (400) naming what is wrong; a second active key of a name is PLT_CONFLICT (409)", () => {
  using dir = tempDir();
  const create = (name: string, roles: string[]) => () => withKeyStore(dir.path, (s) => s.create(name, roles));
  const badName = thrown(create("bad name", ["user"]));
  expect([badName.code, badName.status]).toEqual(["PLT_BAD_REQUEST", 400]);
  const badRole = thrown(create("ok", ["fine", "a b"]));
  expect([badRole.code, badRole.message]).toEqual(["PLT_BAD_REQUEST", 'invalid roles: "a b"']);
  expect(thrown(create("ok", [])).message).toBe("invalid roles: at least one is needed");
  create("dup", ["user"])();
  const dup = thrown(create("dup", ["user"]));
  expect([dup.code, dup.status]).toEqual(["PLT_CONFLICT", 409]);
});

test("an auth database not migrated yet: no key is valid", () => {
  using dir = tempDir();
  new Database(dir.join("auth.sqlite"), { create: true }).close();
  const lookup = new KeyLookup(dir.path);
  expect(lookup.find("plk_abc_def")).toBeNull();
  lookup.close();
});

test("closing a lookup that never opened its database is harmless, and it opens again when asked", () => {
  using dir = tempDir();
  const lookup = new KeyLookup(dir.path);
  lookup.close();
  const { key } = withKeyStore(dir.path, (s) => s.create("meter-1", ["device"]));
  expect(lookup.find(key)?.sub).toBe("meter-1");
  lookup.close();
  expect(lookup.find(key)?.sub).toBe("meter-1");
  lookup.close();
});
