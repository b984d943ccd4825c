/** `plinth new <name>`: scaffold a working plugin in the plugins folder. */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { PlinthError } from "../errors";
import { SERVICE_NAME } from "../protocol";

export function pluginTemplate(name: string): string {
  return `import { definePlugin, route, t } from "plinth";

export default definePlugin({
  name: "${name}",
  version: "0.1.0",
  migrations: [
    \`CREATE TABLE items (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      title TEXT NOT NULL,
      created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    )\`,
  ],
  routes: {
    // GET /api/${name}: open to anyone
    "GET /": route({ auth: "public", handler: (ctx) => ctx.db.query("SELECT * FROM items ORDER BY id").all() }),

    // POST /api/${name}  {"title":"..."}: needs a token or API key (config auth.defaultPolicy;
    // a route may also say auth: ["editor"] for roles)
    "POST /": route({
      body: t.Object({ title: t.String({ minLength: 1 }) }),
      handler(ctx) {
        const item = ctx.db.query("INSERT INTO items (title) VALUES (?) RETURNING *").get(ctx.body.title);
        ctx.emit("created", item);
        ctx.set.status = 201;
        return item;
      },
    }),
  },
});
`;
}

export function scaffold(name: string, pluginsDir: string): string {
  if (!SERVICE_NAME.test(name)) {
    throw new PlinthError("PLT_BAD_REQUEST", `invalid plugin name "${name}": use lower-case letters, digits and '-', starting with a letter`);
  }
  const dir = resolve(pluginsDir, name);
  const file = join(dir, "index.ts");
  if (existsSync(dir) || existsSync(resolve(pluginsDir, `${name}.ts`))) {
    throw new PlinthError("PLT_BAD_REQUEST", `${relative(process.cwd(), dir) || dir} already exists`);
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(file, pluginTemplate(name));
  return file;
}
