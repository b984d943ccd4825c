/**
 * Packets to and from SQLite columns: the payload in a column of its own (a
 * BLOB, or TEXT when it was a string), everything else as JSON. What aedes
 * hands over comes back with the same keys and types: Buffers nested in MQTT 5
 * properties (correlation data) stay Buffers, keys set to `undefined` stay set.
 */

/** The columns one packet is stored in. `payload` is null when the packet had no string or bytes payload. */
export interface Encoded {
  payload: Uint8Array | string | null;
  meta: string;
}

export type StoredPacket = Record<string, unknown>;

// Markers start with U+0000. A key of the packet's own that starts with U+0000 (MQTT forbids the
// character, [MQTT-1.5.3-2] in 3.1.1, but a client may send it anyway) is escaped with one more, so no value
// a client sends can pass for a marker.
const BYTES = "\u0000b";
const UNDEFINED_KEYS = "\u0000u";
const escapeKey = (key: string) => (key.startsWith("\u0000") ? `\u0000${key}` : key);
const unescapeKey = (key: string) => (key.startsWith("\u0000") ? key.slice(1) : key);

/** A JSON-ready copy: bytes as `{ "\0b": base64 }`, marker-like keys escaped. */
function toJson(value: unknown): unknown {
  if (value instanceof Uint8Array) return { [BYTES]: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64") };
  if (Array.isArray(value)) return value.map(toJson);
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) if (v !== undefined) out[escapeKey(key)] = toJson(v);
  return out;
}

function fromJson(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(fromJson);
  if (value === null || typeof value !== "object") return value;
  const entries = Object.entries(value);
  if (entries.length === 1 && entries[0]![0] === BYTES) return Buffer.from(entries[0]![1] as string, "base64");
  const out: Record<string, unknown> = {};
  for (const [key, v] of entries) out[unescapeKey(key)] = fromJson(v);
  return out;
}

/** Encodes a packet's own fields, except those named in `omit` (stored in columns of their own). */
export function encodePacket(packet: object, omit?: string): Encoded {
  const meta: Record<string, unknown> = {};
  const undefinedKeys: string[] = [];
  let payload: Uint8Array | string | null = null;
  for (const [key, value] of Object.entries(packet)) {
    if (key === omit) continue;
    if (key === "payload" && (typeof value === "string" || value instanceof Uint8Array)) payload = value;
    else if (value === undefined) undefinedKeys.push(key);
    else meta[key] = value;
  }
  const json = toJson(meta) as Record<string, unknown>;
  if (undefinedKeys.length > 0) json[UNDEFINED_KEYS] = undefinedKeys;
  return { payload, meta: JSON.stringify(json) };
}

export function decodePacket(payload: Uint8Array | string | null, meta: string): StoredPacket {
  const json = JSON.parse(meta) as Record<string, unknown>;
  const undefinedKeys = json[UNDEFINED_KEYS] as string[] | undefined;
  delete json[UNDEFINED_KEYS];
  const packet = fromJson(json) as StoredPacket;
  if (undefinedKeys) for (const key of undefinedKeys) packet[key] = undefined;
  if (typeof payload === "string") packet.payload = payload;
  else if (payload) packet.payload = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  return packet;
}
