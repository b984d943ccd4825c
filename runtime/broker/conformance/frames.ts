/** The byte stream a client sends, seen by its fixed headers: packet sizes and the CONNECT's protocol level. */

const HEADER = 0;
const LENGTH = 1;
const BODY = 2;
/** Protocol name and level of a CONNECT: 2 bytes of length, "MQIsdp" at most, 1 byte of level. */
const CONNECT_HEAD = 9;

/**
 * Follows the packet boundaries of what a client sends, reading only fixed headers (and the first bytes
 * of the first packet), so a too large packet is caught at its header, before its body is buffered.
 */
export class FrameScanner {
  private phase = HEADER;
  private length = 0;
  private multiplier = 1;
  private headerBytes = 0;
  private remaining = 0;
  private first = true;
  /** The first bytes of the first packet's body, while it may be a CONNECT whose level is not known yet. */
  private head: number[] | null = null;

  constructor(private readonly maxPacketBytes: number) {}

  /** Feeds the next bytes; returns what is wrong with them, or undefined. */
  feed(chunk: Uint8Array): { tooLarge: number } | { protocolLevel: number } | undefined {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.phase === HEADER) {
        if (this.first) this.head = chunk[pos]! >> 4 === 1 ? [] : null;
        this.phase = LENGTH;
        this.length = 0;
        this.multiplier = 1;
        this.headerBytes = 1;
        pos++;
      } else if (this.phase === LENGTH) {
        const byte = chunk[pos++]!;
        this.headerBytes++;
        this.length += (byte & 0x7f) * this.multiplier;
        this.multiplier *= 128;
        // A fifth length byte is malformed: mqtt-packet closes the connection for that itself.
        if (byte & 0x80 && this.headerBytes <= 4) continue;
        const size = this.headerBytes + this.length;
        if (size > this.maxPacketBytes) return { tooLarge: size };
        this.remaining = this.length;
        this.phase = this.length > 0 ? BODY : HEADER;
        if (this.phase === HEADER) this.first = false;
      } else {
        const n = Math.min(this.remaining, chunk.length - pos);
        if (this.first && this.head) {
          for (let i = 0; i < n && this.head.length < CONNECT_HEAD; i++) this.head.push(chunk[pos + i]!);
          const level = this.connectLevel();
          if (level !== undefined) this.head = null;
          if (level != null && level !== 3 && level !== 4 && level !== 5) return { protocolLevel: level };
        }
        this.remaining -= n;
        pos += n;
        if (this.remaining === 0) {
          this.phase = HEADER;
          this.first = false;
        }
      }
    }
    return undefined;
  }

  /**
   * The CONNECT's protocol level (bridge bit cleared); undefined while not all read; null if the
   * protocol name is not "MQTT" or "MQIsdp" (mqtt-packet refuses those, which [MQTT-3.1.2-1] allows).
   */
  private connectLevel(): number | null | undefined {
    const head = this.head!;
    if (head.length < 2) return undefined;
    const nameLength = (head[0]! << 8) | head[1]!;
    if (nameLength !== 4 && nameLength !== 6) return null;
    if (head.length < 3 + nameLength) return undefined;
    const name = String.fromCharCode(...head.slice(2, 2 + nameLength));
    if (name !== "MQTT" && name !== "MQIsdp") return null;
    return head[2 + nameLength]! & 0x7f;
  }
}
