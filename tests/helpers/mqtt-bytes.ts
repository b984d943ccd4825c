/**
 * MQTT 3.1.1 packets byte by byte (for malformed ones in tests, and for the broker benchmark's
 * load generator, which must stay lighter than a client library). No test runner imports here.
 */

/** The "remaining length" of a fixed header: 7 bits per byte, high bit set while more follow. */
export function remainingLength(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return out;
}

/** A packet: first byte (type and flags), remaining length, body. */
export function frame(first: number, ...body: Array<Buffer | number[]>): Buffer {
  const payload = Buffer.concat(body.map((b) => (Buffer.isBuffer(b) ? b : Buffer.from(b))));
  return Buffer.concat([Buffer.from([first, ...remainingLength(payload.length)]), payload]);
}

/** A length-prefixed string field; a Buffer is written as is (for ill-formed UTF-8). */
export function str(s: string | Buffer | number[]): Buffer {
  const bytes = typeof s === "string" ? Buffer.from(s, "utf8") : Buffer.from(s);
  return Buffer.concat([Buffer.from([bytes.length >> 8, bytes.length & 0xff]), bytes]);
}
