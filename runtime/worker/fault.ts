/**
 * What a plugin's failure may say, and where: the detail (stack, source lines, file paths) goes to
 * the log; callers and operators' listings get one short line.
 */

/** Longest summary kept from a worker's error text. */
const SUMMARY_MAX = 200;

/**
 * One line out of the text of a worker's uncaught error: Bun formats it as the source lines around
 * the throw, a caret, `error: <message>` (or `TypeError: …`) and the stack frames. Keeps the message
 * line alone, without the source, the frames or the file paths in them.
 */
export function summarize(text: string): string {
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || /^\d+ \| /.test(line) || /^\^+$/.test(line) || /^at /.test(line)) continue;
    const message = line.replace(/^error: /, "");
    return message.length > SUMMARY_MAX ? `${message.slice(0, SUMMARY_MAX)}…` : message;
  }
  return "unknown error";
}

/** Any thrown value as text for the log: never throws (a value whose toString throws, a Symbol, null). */
export function describeThrown(err: unknown): string {
  try {
    if (err instanceof Error) return err.stack ?? `${err.name}: ${err.message}`;
    if (typeof err === "string") return err;
    if (typeof err === "symbol") return err.toString();
    return String(err);
  } catch {
    try {
      return `thrown value of type ${typeof err} (${Object.prototype.toString.call(err)})`;
    } catch {
      return `thrown value of type ${typeof err}`;
    }
  }
}
