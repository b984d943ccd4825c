/**
 * The built-in `auth` service: API keys, kept hashed in its own database
 * (`data/auth.sqlite`), managed over HTTP by admins (or with `plinth keys`),
 * and `GET /api/auth/me` for any caller to see who the platform thinks they are.
 */
import { PlinthError, definePlugin, route, t } from "plinth";
import { KEY_MIGRATIONS, KEY_NAME, KeyStore, ROLE_NAME } from "../../runtime/auth/keys";

const admin = ["admin"];

export default definePlugin({
  name: "auth",
  version: "0.1.0",
  description: "API keys (hashed) and the caller's identity.",
  migrations: KEY_MIGRATIONS,
  routes: {
    "GET /me": route({ auth: "authenticated", summary: "The caller's identity", handler: (ctx) => ctx.identity }),
    "GET /keys": route({ auth: admin, summary: "List API keys (never the keys themselves)", handler: (ctx) => new KeyStore(ctx.db).list() }),
    "POST /keys": route({
      auth: admin,
      summary: "Create an API key; the key is in this answer only",
      body: t.Object(
        {
          name: t.String({ pattern: KEY_NAME.source }),
          roles: t.Array(t.String({ pattern: ROLE_NAME.source }), { minItems: 1, maxItems: 32 }),
        },
        { additionalProperties: false },
      ),
      handler(ctx) {
        const { key, info } = new KeyStore(ctx.db).create(ctx.body.name, ctx.body.roles);
        ctx.set.status = 201;
        return { ...info, key };
      },
    }),
    "DELETE /keys/:id": route({
      auth: admin,
      summary: "Revoke an API key by id or name",
      handler(ctx) {
        const revoked = new KeyStore(ctx.db).revoke(ctx.params.id);
        if (revoked === 0) throw new PlinthError("PLT_NOT_FOUND", `no active API key "${ctx.params.id}"`);
        return { revoked };
      },
    }),
  },
});
