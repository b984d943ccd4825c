/**
 * API keys, kept hashed in the built-in `auth` service's own database
 * (`<data>/auth.sqlite`). A key is `plk_<id>_<secret>`; only its SHA-256 is
 * stored, so the file never holds a usable key. The CLI and the auth service
 * write; the gateway and broker look keys up read-only (WAL: no locking out).
 */
import { Database } from "bun:sqlite";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { PlinthError } from "../errors";
import type { Identity } from "./identity";

export const KEY_PREFIX = "plk_";
export const AUTH_SERVICE = "auth";

/** The auth service's migrations (append only). */
export const KEY_MIGRATIONS = [
  `CREATE TABLE api_keys (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL,
     roles TEXT NOT NULL,
     hash TEXT NOT NULL UNIQUE,
     created_at TEXT NOT NULL,
     revoked_at TEXT
   )`,
  // The name is the identity: one active key per name.
  "CREATE UNIQUE INDEX api_keys_active_name ON api_keys (name) WHERE revoked_at IS NULL",
];

/** What a key's name and roles may be (the CLI and the HTTP API check the same). */
export const KEY_NAME = /^[A-Za-z0-9_.@-]{1,64}$/;
export const ROLE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

export interface KeyInfo {
  id: string;
  name: string;
  roles: string[];
  createdAt: string;
  revokedAt: string | null;
}

// Bun's hasher and Web Crypto, not node:crypto: this file runs in the auth service's worker, and
// importing node:crypto costs every plugin worker ~1.7 ms at start (they share one bundle).
export const hashKey = (key: string) => new Bun.CryptoHasher("sha256").update(key).digest("hex");
const randomBytes = (n: number) => Buffer.from(crypto.getRandomValues(new Uint8Array(n)));
export const looksLikeKey = (value: string) => value.startsWith(KEY_PREFIX);

interface Row {
  id: string;
  name: string;
  roles: string;
  created_at: string;
  revoked_at: string | null;
}
const toInfo = (r: Row): KeyInfo => ({ id: r.id, name: r.name, roles: JSON.parse(r.roles) as string[], createdAt: r.created_at, revokedAt: r.revoked_at });

/** Creates, lists and revokes keys on an open (migrated) auth database. */
export class KeyStore {
  constructor(private readonly db: Database) {}

  /** Returns the new key: shown once, never stored. */
  create(name: string, roles: string[]): { key: string; info: KeyInfo } {
    if (!KEY_NAME.test(name)) throw new PlinthError("PLT_BAD_REQUEST", `invalid key name ${JSON.stringify(name)}: letters, digits, '_', '.', '@', '-' (at most 64)`);
    const badRole = roles.find((r) => !ROLE_NAME.test(r));
    if (roles.length === 0 || badRole !== undefined) throw new PlinthError("PLT_BAD_REQUEST", `invalid roles: ${roles.length === 0 ? "at least one is needed" : JSON.stringify(badRole)}`);
    if (this.db.query("SELECT 1 FROM api_keys WHERE name = ? AND revoked_at IS NULL").get(name)) {
      throw new PlinthError("PLT_CONFLICT", `an active API key named "${name}" exists: revoke it first, or choose another name`);
    }
    const id = randomBytes(6).toString("hex");
    const key = `${KEY_PREFIX}${id}_${randomBytes(24).toString("base64url")}`;
    const createdAt = new Date().toISOString();
    this.db.query("INSERT INTO api_keys (id, name, roles, hash, created_at) VALUES (?, ?, ?, ?, ?)").run(id, name, JSON.stringify(roles), hashKey(key), createdAt);
    return { key, info: { id, name, roles, createdAt, revokedAt: null } };
  }

  list(): KeyInfo[] {
    return (this.db.query("SELECT id, name, roles, created_at, revoked_at FROM api_keys ORDER BY created_at, id").all() as Row[]).map(toInfo);
  }

  /** Revokes by id or name; returns how many keys it revoked. */
  revoke(idOrName: string): number {
    return this.db.query("UPDATE api_keys SET revoked_at = ? WHERE (id = ? OR name = ?) AND revoked_at IS NULL").run(new Date().toISOString(), idOrName, idOrName).changes;
  }
}

/** Read-only lookups for the main thread. Opens the file when it first exists. */
export class KeyLookup {
  private db: Database | null = null;

  constructor(private readonly dataDir: string) {}

  /** The identity of a valid, unrevoked key, or null. */
  find(key: string): Identity | null {
    const db = this.open();
    if (!db) return null;
    try {
      const row = db.query("SELECT name, roles FROM api_keys WHERE hash = ? AND revoked_at IS NULL").get(hashKey(key)) as Pick<Row, "name" | "roles"> | null;
      return row ? { sub: row.name, roles: JSON.parse(row.roles) as string[], via: "key" } : null;
    } catch {
      return null; // not migrated yet: no key is valid
    }
  }

  close(): void {
    this.db?.close();
    this.db = null;
  }

  private open(): Database | null {
    if (this.db) return this.db;
    const file = join(this.dataDir, `${AUTH_SERVICE}.sqlite`);
    if (!existsSync(file)) return null;
    this.db = new Database(file, { readonly: true });
    this.db.exec("PRAGMA busy_timeout = 2000");
    return this.db;
  }
}
