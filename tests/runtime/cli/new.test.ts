/** `plinth new <name>` (runtime/cli/new.ts): the name rule, refusing to overwrite, and a template that is a working plugin. */
import { Database } from "bun:sqlite";
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { relative } from "node:path";
import { pluginTemplate, scaffold } from "../../../runtime/cli/new";
import { PlinthError } from "../../../runtime/errors";
import { validatePlugin } from "../../../runtime/sdk/manifest";
import { registerSdkModule } from "../../../runtime/sdk/module";
import type { PluginDefinition, RouteSpec } from "../../../runtime/sdk/define";
import { tempDir } from "../../helpers/tmp";
import { invoke } from "./invoke";

const refused = (fn: () => unknown): PlinthError => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PlinthError);
    return err as PlinthError;
  }
  throw new Error("expected scaffold to refuse");
};

describe("scaffold", () => {
  test("writes <plugins>/<name>/index.ts with the template for that name, creating the plugins folder", () => {
    using dir = tempDir("plinth-new");
    const file = scaffold("billing", dir.join("not-yet/plugins"));
    expect(file).toBe(dir.join("not-yet/plugins/billing/index.ts"));
    expect(readFileSync(file, "utf8")).toBe(pluginTemplate("billing"));
    expect(readdirSync(dir.join("not-yet/plugins"))).toEqual(["billing"]);
  });

  test("names the service rule allows are accepted, at its edges too", () => {
    using dir = tempDir("plinth-new");
    for (const name of ["a", "a1", "a-b", "x".repeat(63)]) expect(existsSync(scaffold(name, dir.path))).toBe(true);
  });

  test("any other name is PLT_BAD_REQUEST quoting it, and nothing is written", () => {
    using dir = tempDir("plinth-new");
    for (const name of ["", "Billing", "bad_name", "1st", "-x", "a/b", "../up", "a b", "x".repeat(64), "é"]) {
      const err = refused(() => scaffold(name, dir.path));
      expect(err.code).toBe("PLT_BAD_REQUEST");
      expect(err.message).toBe(`invalid plugin name "${name}": use lower-case letters, digits and '-', starting with a letter`);
    }
    expect(readdirSync(dir.path)).toEqual([]);
    expect(existsSync(dir.join("..", "up"))).toBe(false);
  });

  test("a plugin of that name, as a folder or as a single file, is never overwritten", () => {
    using dir = tempDir("plinth-new");
    mkdirSync(dir.join("orders"));
    writeFileSync(dir.join("orders", "index.ts"), "mine");
    writeFileSync(dir.join("billing.ts"), "mine too");
    for (const name of ["orders", "billing"]) {
      const err = refused(() => scaffold(name, dir.path));
      expect(err.code).toBe("PLT_BAD_REQUEST");
      expect(err.message).toBe(`${relative(process.cwd(), dir.join(name))} already exists`);
    }
    expect(readFileSync(dir.join("orders", "index.ts"), "utf8")).toBe("mine");
    expect(existsSync(dir.join("billing"))).toBe(false);
  });
});

describe("the template", () => {
  test("is a valid plugin of that name: GET / public, POST / with a body schema", async () => {
    using dir = tempDir("plinth-new");
    registerSdkModule();
    const file = scaffold("billing", dir.path);
    const { default: plugin } = (await import(file)) as { default: PluginDefinition };
    const { manifest } = validatePlugin(plugin);
    expect(plugin.name).toBe("billing");
    expect(manifest.routes.map((r) => `${r.method} ${r.path} ${JSON.stringify(r.auth ?? null)}`).sort()).toEqual(['GET / "public"', "POST / null"]);
  });

  test("its routes work on its own migrations: POST stores and emits `created`, GET lists", async () => {
    using dir = tempDir("plinth-new");
    registerSdkModule();
    const { default: plugin } = (await import(scaffold("notes", dir.path))) as { default: PluginDefinition };
    using db = new Database(":memory:");
    for (const sql of plugin.migrations ?? []) db.run(sql);
    const emitted: Array<[string, unknown]> = [];
    const set: { status?: number; headers: Record<string, string> } = { headers: {} };
    const ctx = { db, set, body: { title: "first" }, emit: (type: string, data: unknown) => void emitted.push([type, data]) };
    const post = plugin.routes!["POST /"] as RouteSpec;
    const item = (await post.handler(ctx as never)) as { id: number; title: string; created_at: string };
    expect(item).toMatchObject({ id: 1, title: "first" });
    expect(item.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(set.status).toBe(201);
    expect(emitted).toEqual([["created", item]]);
    const get = plugin.routes!["GET /"] as RouteSpec;
    expect(await get.handler({ db } as never)).toEqual([item]);
  });
});

describe("plinth new through the command line", () => {
  test("prints the file made, relative to the working folder, and how to try it", async () => {
    using dir = tempDir("plinth-new");
    const out = await invoke(["new", "billing", "--plugins", dir.path]);
    expect(out.code).toBe(0);
    expect(out.stdout).toBe(`created ${relative(process.cwd(), dir.join("billing/index.ts"))}\nrun \`plinth run\` and try: curl localhost:3000/api/billing`);
    expect(existsSync(dir.join("billing/index.ts"))).toBe(true);
  });

  test("a refused name or an existing plugin: exit 1 with the reason on one line", async () => {
    using dir = tempDir("plinth-new");
    const bad = await invoke(["new", "Bad_Name", "--plugins", dir.path]);
    expect(bad).toEqual({ code: 1, stdout: "", stderr: `plinth: PLT_BAD_REQUEST: invalid plugin name "Bad_Name": use lower-case letters, digits and '-', starting with a letter` });
    expect((await invoke(["new", "billing", "--plugins", dir.path])).code).toBe(0);
    const again = await invoke(["new", "billing", "--plugins", dir.path]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^plinth: PLT_BAD_REQUEST: \S*billing already exists$/);
  });
});
