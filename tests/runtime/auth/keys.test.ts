import { expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { join } from "node:path";
import { KeyLookup, hashKey } from "../../../runtime/auth/keys";
import { withKeyStore } from "../../../runtime/cli/keys";
import { tempDir } from "../../helpers/tmp";

test("keys are stored only as hashes; lookups see creation and revocation at once", () => {
  using dir = tempDir();
  const lookup = new KeyLookup(dir.path);
  expect(lookup.find("plk_x_y")).toBeNull(); // no database yet
  const { key, info } = withKeyStore(dir.path, (s) => s.create("meter-7", ["device"]));
  expect(key).toMatch(/^plk_[0-9a-f]{12}_[A-Za-z0-9_-]{32}$/);
  expect(lookup.find(key)).toEqual({ sub: "meter-7", roles: ["device"], via: "key" });

  const raw = new Database(join(dir.path, "auth.sqlite"), { readonly: true });
  const rows = raw.query("SELECT * FROM api_keys").all() as Array<Record<string, unknown>>;
  raw.close();
  expect(JSON.stringify(rows)).not.toContain(key.slice(17));
  expect(rows[0]!.hash).toBe(hashKey(key));

  expect(withKeyStore(dir.path, (s) => s.revoke(info.id))).toBe(1);
  expect(lookup.find(key)).toBeNull();
  expect(withKeyStore(dir.path, (s) => s.revoke(info.id))).toBe(0);
  expect(withKeyStore(dir.path, (s) => s.list())[0]!.revokedAt).not.toBeNull();
  lookup.close();
});

test("names and roles are checked, and one active key per name (the name is the identity)", () => {
  using dir = tempDir();
  expect(() => withKeyStore(dir.path, (s) => s.create("bad name", ["user"]))).toThrow(/invalid key name/);
  expect(() => withKeyStore(dir.path, (s) => s.create("ok", []))).toThrow(/at least one/);
  expect(() => withKeyStore(dir.path, (s) => s.create("ok", ["a b"]))).toThrow(/invalid roles/);
  withKeyStore(dir.path, (s) => s.create("dup", ["user"]));
  expect(() => withKeyStore(dir.path, (s) => s.create("dup", ["admin"]))).toThrow(/an active API key named "dup" exists/);
  expect(withKeyStore(dir.path, (s) => s.revoke("dup"))).toBe(1);
  expect(withKeyStore(dir.path, (s) => s.create("dup", ["admin"])).info.roles).toEqual(["admin"]);
});
