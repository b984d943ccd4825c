/**
 * Generated configs: a valid config with one to three fields (found by walking the schema) set to
 * hostile values: wrong types, numbers at the edges, deep or cyclic objects, prototype keys, odd
 * strings. The property: loadConfig returns a frozen config that satisfies the schema, or fails
 * with PLT_CONFIG_INVALID naming a field; nothing else is ever thrown, and a wrong value never
 * passes silently.
 */
import { expect, test } from "bun:test";
import { Kind, type TSchema } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { loadConfig } from "../../config/load";
import { ConfigSchema } from "../../config/schema";
import { PlinthError } from "../../runtime/errors";
import { checkProperty, fc } from "../helpers/property";
import { tempDir } from "../helpers/tmp";

/** Every field path in the schema (objects walked; records, arrays and unions are leaves). */
function fieldPaths(schema: TSchema, prefix: string[] = []): string[][] {
  if (schema[Kind] === "Object" && schema.properties) {
    return Object.entries(schema.properties as Record<string, TSchema>).flatMap(([k, s]) => [[...prefix, k], ...fieldPaths(s, [...prefix, k])]);
  }
  return [];
}
const PATHS = fieldPaths(ConfigSchema);

const cyclic = () => {
  const o: Record<string, unknown> = {};
  o.self = o;
  return o;
};

const hostileValue = fc.oneof(
  fc.constantFrom<unknown>(null, true, false, 0, -1, -0, 1.5, NaN, Infinity, -Infinity, 2 ** 53 + 1, 65536, 1e308, "", " ", "0", "\u0000", "../../etc", "*", "#", "x".repeat(10_000)),
  fc.constantFrom<unknown>([], [null], {}, { __proto__: { polluted: true } }, JSON.parse('{"__proto__":{"polluted":true}}'), { constructor: { prototype: { polluted: true } } }),
  fc.jsonValue({ maxDepth: 3 }),
  fc.integer({ min: 1, max: 20_000 }).map((n) => {
    let v: unknown = 1;
    for (let i = 0; i < n; i++) v = i % 3 ? { a: v } : [v];
    return v;
  }),
  fc.constant(undefined).map(cyclic),
  fc.string({ unit: "binary", maxLength: 30 }),
  fc.constantFrom<unknown>(10n, Symbol("s"), () => 1, new Date(0), /re/, new Map([[1, 2]])),
);

const edit = fc.record({ path: fc.constantFrom(...PATHS), value: hostileValue });

function setAt(target: Record<string, unknown>, path: string[], value: unknown): void {
  let at = target;
  for (const key of path.slice(0, -1)) {
    if (typeof at[key] !== "object" || at[key] === null || Array.isArray(at[key])) at[key] = {};
    at = at[key] as Record<string, unknown>;
  }
  at[path.at(-1)!] = value;
}

test("generated configs: a valid frozen config or PLT_CONFIG_INVALID naming a field, never anything else", async () => {
  using dir = tempDir("plinth-gen-config");
  const runs = await checkProperty("config", { runs: 500, ms: 10_000 }, [fc.array(edit, { minLength: 1, maxLength: 3 })], async (edits) => {
    const overrides: Record<string, unknown> = { data: { dir: dir.join("data") }, plugins: { dir: dir.join("plugins") } };
    for (const e of edits) setAt(overrides, e.path, e.value);
    const outcome = await loadConfig({ cwd: dir.path, overrides }).then(
      (loaded) => ({ ok: true as const, loaded }),
      (error: unknown) => ({ ok: false as const, error }),
    );
    expect(({} as Record<string, unknown>).polluted, "no prototype pollution").toBeUndefined();
    if (outcome.ok) {
      const { config } = outcome.loaded;
      expect(Object.isFrozen(config.gateway)).toBe(true);
      expect(Value.Check(ConfigSchema, config), "an accepted config satisfies the schema").toBe(true);
      return;
    }
    const { error } = outcome;
    expect(error, String((error as Error)?.stack ?? error)).toBeInstanceOf(PlinthError);
    const e = error as PlinthError;
    expect(e.code).toBe("PLT_CONFIG_INVALID");
    expect(e.message).toMatch(/invalid config\n {2}\S/);
    expect(e.message.length, "a bounded message").toBeLessThan(20_000);
  });
  expect(runs).toBeGreaterThan(50);
}, 30_000);
