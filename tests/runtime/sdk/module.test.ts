/** registerSdkModule (runtime/sdk/module.ts): `import ... from "plinth"` resolves to the SDK, registered once per thread. */
import { describe, expect, spyOn, test } from "bun:test";
import { writeFileSync } from "node:fs";
import * as sdk from "../../../runtime/sdk/index";
import { registerSdkModule } from "../../../runtime/sdk/module";
import { tempDir } from "../../helpers/tmp";

describe("registerSdkModule", () => {
  test('a file outside the project imports the SDK itself as "plinth", nothing installed beside it', async () => {
    registerSdkModule();
    using dir = tempDir("plinth-sdk-module");
    const file = dir.join("plugin.ts");
    writeFileSync(
      file,
      `import * as all from "plinth";\nimport { definePlugin, t, PlinthError } from "plinth";\n` +
        `export { all };\nexport default definePlugin({ name: "outside", version: "1.0.0", migrations: [], routes: { "GET /": { body: t.Object({}), handler: () => { throw new PlinthError("PLT_NOT_FOUND", "x"); } } } });\n`,
    );
    const mod = (await import(file)) as { default: { name: string }; all: Record<string, unknown> };
    expect(mod.default.name).toBe("outside");
    expect(Object.keys(mod.all).sort()).toEqual(Object.keys(sdk).sort());
    for (const key of Object.keys(sdk)) expect(mod.all[key], key).toBe((sdk as Record<string, unknown>)[key]);
  });

  test("a second call registers nothing more", () => {
    registerSdkModule();
    const plugin = spyOn(Bun, "plugin");
    try {
      registerSdkModule();
      registerSdkModule();
      expect(plugin).not.toHaveBeenCalled();
    } finally {
      plugin.mockRestore();
    }
  });
});
