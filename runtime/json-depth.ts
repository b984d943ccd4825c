/**
 * How deep a JSON text nests, found in one pass over its characters: JSON.parse itself
 * is iterative, but a deep value makes every recursive walk after it (JSON.stringify to
 * cross between threads, schema validation) overflow the stack. Used on request bodies
 * (gateway.maxJsonDepth) and on every message between the host and a worker. Brackets
 * inside strings do not count; string contents are skipped with indexOf, so a text of
 * long strings costs little more than one of short ones.
 */
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const OPEN_OBJECT = 0x7b;
const CLOSE_ARRAY = 0x5d;
const CLOSE_OBJECT = 0x7d;

/** True when `text` opens more than `max` arrays or objects inside one another (malformed text is left to the parser). */
export function nestsDeeperThan(text: string, max: number): boolean {
  const n = text.length;
  // Nesting deeper than `max` takes more than `max` opening brackets: counted first with indexOf,
  // which rules out most texts without reading them char by char.
  if (n <= max) return false;
  let openers = 0;
  for (const bracket of ["{", "["]) {
    for (let i = text.indexOf(bracket); i >= 0 && openers <= max; i = text.indexOf(bracket, i + 1)) openers++;
  }
  if (openers <= max) return false;
  let depth = 0;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      i = stringEnd(text, i);
      if (i < 0) return false;
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > max) return true;
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      depth--;
    }
  }
  return false;
}

/** The index of the quote that closes the string opened at `open`, or -1 if it is never closed. */
function stringEnd(text: string, open: number): number {
  let at = text.indexOf('"', open + 1);
  while (at > 0) {
    // Escaped when an odd number of backslashes precede it.
    let slashes = 0;
    for (let j = at - 1; text.charCodeAt(j) === BACKSLASH; j--) slashes++;
    if ((slashes & 1) === 0) return at;
    at = text.indexOf('"', at + 1);
  }
  return -1;
}
