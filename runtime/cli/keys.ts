/**
 * `plinth keys create|list|revoke`: API keys in the auth service's database,
 * written directly (like PocketBase's superuser command), so the first admin
 * key can be made before the platform ever runs. A running platform sees
 * changes at once: it looks keys up in the same file.
 */
import { KEY_MIGRATIONS, KeyStore, AUTH_SERVICE } from "../auth/keys";
import { mkdirSync } from "node:fs";
import { openDatabase } from "../worker/database";
import { VERSION } from "../version";

export function withKeyStore<T>(dataDir: string, fn: (store: KeyStore) => T): T {
  mkdirSync(dataDir, { recursive: true });
  const db = openDatabase(dataDir, { name: AUTH_SERVICE, version: VERSION, migrations: KEY_MIGRATIONS }, { durability: "full" });
  try {
    return fn(new KeyStore(db));
  } finally {
    db.close();
  }
}

export function keys(command: "create" | "list" | "revoke", options: { dataDir: string; roles: string[]; name?: string; id?: string; json: boolean }): number {
  return withKeyStore(options.dataDir, (store) => {
    switch (command) {
      case "create": {
        if (options.roles.length === 0) {
          console.error("plinth: keys create needs at least one --role");
          return 2;
        }
        const { key, info } = store.create(options.name ?? `key-${Date.now().toString(36)}`, options.roles);
        if (options.json) console.log(JSON.stringify({ ...info, key }));
        else console.log(`created API key ${info.id} "${info.name}" with roles ${info.roles.join(", ")}\n\n  ${key}\n\nIt is shown only now: store it. Send it as "Authorization: Bearer <key>" or "X-API-Key: <key>", or as the MQTT password.`);
        return 0;
      }
      case "list": {
        const all = store.list();
        if (options.json) console.log(JSON.stringify(all));
        else if (all.length === 0) console.log("no API keys");
        else for (const k of all) console.log(`${k.id}  ${k.name}  ${k.roles.join(",")}  created ${k.createdAt}${k.revokedAt ? `  REVOKED ${k.revokedAt}` : ""}`);
        return 0;
      }
      case "revoke": {
        const n = store.revoke(options.id ?? "");
        if (n === 0) {
          console.error(`plinth: PLT_NOT_FOUND: no active API key "${options.id}"`);
          return 1;
        }
        console.log(`revoked ${n} key${n === 1 ? "" : "s"} "${options.id}"`);
        return 0;
      }
    }
  });
}
