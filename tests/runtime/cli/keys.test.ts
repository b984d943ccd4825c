/** `plinth keys create|list|revoke` (runtime/cli/keys.ts): written straight into the auth store, exit codes and both output formats. */
import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { KeyLookup } from "../../../runtime/auth/keys";
import { keys, withKeyStore } from "../../../runtime/cli/keys";
import { tempDir } from "../../helpers/tmp";
import { captured, invoke } from "./invoke";

type Options = Parameters<typeof keys>[1];
const run = (command: "create" | "list" | "revoke", options: Partial<Options> & { dataDir: string }) =>
  captured(() => {
    process.exitCode = keys(command, { roles: [], json: false, ...options });
  });

describe("keys create", () => {
  test("without a role: exit 2, a message, and no key", async () => {
    using dir = tempDir("plinth-keys");
    expect(await run("create", { dataDir: dir.path, name: "ops" })).toEqual({ code: 2, stdout: "", stderr: "plinth: keys create needs at least one --role" });
    expect(withKeyStore(dir.path, (s) => s.list())).toEqual([]);
  });

  test("prints the key once, with its id, name and roles; the key is one the platform accepts", async () => {
    using dir = tempDir("plinth-keys");
    const out = await run("create", { dataDir: dir.join("not-yet"), name: "ops", roles: ["admin", "audit"] });
    expect(out.code).toBe(0);
    const [, , key] = out.stdout.match(/^created API key ([0-9a-f]{12}) "ops" with roles admin, audit\n\n {2}(plk_\1_\S+)\n\nIt is shown only now: store it\./) ?? [];
    expect(key, out.stdout).toBeDefined();
    expect(out.stdout).toContain(`Send it as "Authorization: Bearer <key>" or "X-API-Key: <key>", or as the MQTT password.`);
    const lookup = new KeyLookup(dir.join("not-yet"));
    try {
      expect(lookup.find(key!)).toEqual({ sub: "ops", roles: ["admin", "audit"], via: "key" });
    } finally {
      lookup.close();
    }
  });

  test("--json: one JSON object with the key and its info", async () => {
    using dir = tempDir("plinth-keys");
    const out = await run("create", { dataDir: dir.path, name: "ci", roles: ["deploy"], json: true });
    expect(out.code).toBe(0);
    const made = JSON.parse(out.stdout) as Record<string, unknown>;
    expect(made).toEqual({ id: expect.stringMatching(/^[0-9a-f]{12}$/), name: "ci", roles: ["deploy"], createdAt: expect.any(String), revokedAt: null, key: expect.stringMatching(/^plk_/) });
    expect(withKeyStore(dir.path, (s) => s.list().map((k) => k.id))).toEqual([made.id as string]);
  });

  test("without --name: a generated name of its own", async () => {
    using dir = tempDir("plinth-keys");
    const first = JSON.parse((await run("create", { dataDir: dir.path, roles: ["x"], json: true })).stdout) as { name: string };
    expect(first.name).toMatch(/^key-[0-9a-z]+$/);
  });

  test("a name already active, or a role the rules refuse: PLT_ errors thrown for the command line to report", async () => {
    using dir = tempDir("plinth-keys");
    await run("create", { dataDir: dir.path, name: "ops", roles: ["admin"] });
    expect((await invoke(["keys", "create", "--name", "ops", "--role", "admin", "--data", dir.path])).stderr).toBe(
      'plinth: PLT_CONFLICT: an active API key named "ops" exists: revoke it first, or choose another name',
    );
    const bad = await invoke(["keys", "create", "--name", "x", "--role", "a b", "--data", dir.path]);
    expect(bad).toEqual({ code: 1, stdout: "", stderr: 'plinth: PLT_BAD_REQUEST: invalid roles: "a b"' });
  });
});

describe("keys list", () => {
  test("none: says so; --json: []", async () => {
    using dir = tempDir("plinth-keys");
    expect(await run("list", { dataDir: dir.path })).toEqual({ code: 0, stdout: "no API keys", stderr: "" });
    expect((await run("list", { dataDir: dir.path, json: true })).stdout).toBe("[]");
  });

  test("one line per key, in creation order, revoked ones marked; never the key itself", async () => {
    using dir = tempDir("plinth-keys");
    const ops = withKeyStore(dir.path, (s) => s.create("ops", ["admin"]));
    const ci = withKeyStore(dir.path, (s) => s.create("ci", ["deploy", "read"]));
    withKeyStore(dir.path, (s) => s.revoke("ci"));
    const [revoked] = withKeyStore(dir.path, (s) => s.list().filter((k) => k.revokedAt));
    const out = await run("list", { dataDir: dir.path });
    expect(out.code).toBe(0);
    expect(out.stdout.split("\n")).toEqual([
      `${ops.info.id}  ops  admin  created ${ops.info.createdAt}`,
      `${ci.info.id}  ci  deploy,read  created ${ci.info.createdAt}  REVOKED ${revoked!.revokedAt}`,
    ]);
    const json = (await run("list", { dataDir: dir.path, json: true })).stdout;
    expect(JSON.parse(json)).toEqual(withKeyStore(dir.path, (s) => s.list()));
    for (const secret of [ops.key, ci.key]) expect(out.stdout + json).not.toContain(secret);
  });
});

describe("keys revoke", () => {
  test("by id or by name: exit 0 saying how many; the key is refused from then on", async () => {
    using dir = tempDir("plinth-keys");
    const a = withKeyStore(dir.path, (s) => s.create("a", ["x"]));
    withKeyStore(dir.path, (s) => s.create("b", ["x"]));
    expect(await run("revoke", { dataDir: dir.path, id: a.info.id })).toEqual({ code: 0, stdout: `revoked 1 key "${a.info.id}"`, stderr: "" });
    expect((await run("revoke", { dataDir: dir.path, id: "b" })).stdout).toBe('revoked 1 key "b"');
    const lookup = new KeyLookup(dir.path);
    try {
      expect(lookup.find(a.key)).toBeNull();
    } finally {
      lookup.close();
    }
  });

  test("an id and a name that match two active keys revoke both, said in the plural", async () => {
    using dir = tempDir("plinth-keys");
    const a = withKeyStore(dir.path, (s) => s.create("first", ["x"]));
    withKeyStore(dir.path, (s) => s.create(a.info.id, ["x"])); // a key named as the other's id
    expect((await run("revoke", { dataDir: dir.path, id: a.info.id })).stdout).toBe(`revoked 2 keys "${a.info.id}"`);
  });

  test("nothing active of that id or name (twice revoked included): exit 1, PLT_NOT_FOUND", async () => {
    using dir = tempDir("plinth-keys");
    withKeyStore(dir.path, (s) => s.create("a", ["x"]));
    expect(await run("revoke", { dataDir: dir.path, id: "ghost" })).toEqual({ code: 1, stdout: "", stderr: 'plinth: PLT_NOT_FOUND: no active API key "ghost"' });
    await run("revoke", { dataDir: dir.path, id: "a" });
    expect((await run("revoke", { dataDir: dir.path, id: "a" })).code).toBe(1);
  });
});

describe("through the command line", () => {
  test("--data names the folder (created if missing); the exit code is the command's", async () => {
    using dir = tempDir("plinth-keys");
    const data = dir.join("data");
    expect((await invoke(["keys", "list", "--data", data])).stdout).toBe("no API keys");
    expect(existsSync(dir.join("data/auth.sqlite"))).toBe(true);
    expect((await invoke(["keys", "create", "--data", data])).code).toBe(2);
    expect((await invoke(["keys", "create", "--role", "admin", "--name", "ops", "--data", data])).code).toBe(0);
    expect((await invoke(["keys", "revoke", "nobody", "--data", data])).code).toBe(1);
    expect(await invoke(["keys", "revoke", "ops", "--data", data])).toEqual({ code: 0, stdout: 'revoked 1 key "ops"', stderr: "" });
  });
});
