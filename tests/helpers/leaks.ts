/**
 * What must never reach a client: a stack frame, a source line, a file path of the server, or an
 * HTML error page. `leaks(answer, sent)` names the first such thing found in an answer (ignoring
 * what the request itself carried, which an error message may quote), or null.
 */
import { tmpdir } from "node:os";
import { REPO } from "./plugins";

const MARKERS: Array<[name: string, pattern: RegExp]> = [
  ["a stack frame", /\n\s+at \S.*(:\d+:\d+|\(native\))/],
  ["a source location", /\.(ts|js|mjs):\d+(:\d+)?/],
  ["node_modules", /node_modules/],
  ["the repository's path", new RegExp(REPO.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))],
  ["the temp folder", new RegExp(`${tmpdir().replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/plinth`)],
  ["an HTML error page", /<!doctype html|<html/i],
  ["an error's name and message", /\b(RangeError|TypeError|SyntaxError|ReferenceError|SQLiteError): /],
];

export function leaks(answer: string, sent = ""): string | null {
  for (const [name, pattern] of MARKERS) {
    const m = answer.match(pattern);
    if (m && !sent.includes(m[0])) return `${name}: ${JSON.stringify(m[0])}`;
  }
  return null;
}
