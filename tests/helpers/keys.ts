/** API keys for tests, written into a data folder's auth database (as `plinth keys create` does). */
import { withKeyStore } from "../../runtime/cli/keys";

export function createKey(dataDir: string, roles: string[], name = `test-${roles.join("-")}`): string {
  return withKeyStore(dataDir, (store) => store.create(name, roles).key);
}

export function revokeKey(dataDir: string, idOrName: string): number {
  return withKeyStore(dataDir, (store) => store.revoke(idOrName));
}
