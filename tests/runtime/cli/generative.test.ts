/**
 * Generated command lines run in process (as runtime/main.ts runs them): every command with hostile
 * names, flags and values, options given twice, unknown flags and stray words. The property: the
 * command ends with exit 0, 1 or 2; a usage error (2) starts with yargs' reason or ours, an error (1)
 * is `plinth: <reason>` on one line (an invalid config's fields
 * indented below it); and nothing printed is a stack trace, an internal error's text
 * or a path into the program's own files. Runs in a temp folder whose platform.config.ts is
 * invalid, so `run` never starts a platform; fetch answers as if nobody listened (no port is used).
 * The compiled binary under the same kind of input: tests/e2e/generative/cli.test.ts.
 */
import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { REPO } from "../../helpers/plugins";
import { checkProperty, fc } from "../../helpers/property";
import { tempDir } from "../../helpers/tmp";
import { fakeFetch } from "./fake-fetch";
import { invoke, type Outcome } from "./invoke";
import { store } from "./stores";

const word = fc.oneof(
  fc.constantFrom("", "-", "--", "-x", "--x", "=", "orders", "a".repeat(300), "x/y", "/etc/passwd", "/etc/passwd/x", "Ünï", "\u{1f4a9}", "con", "0", "-1", "1e99", "NaN", "--help", "--version", "--no-watch", "--json", "--url", "--key", "bad.config.ts"),
  fc.string({ maxLength: 12 }).map((s) => s.replace(/\0/g, "")),
);
const flagAndValue = fc.tuple(fc.constantFrom("--role", "--name", "--data", "--config", "--json", "--url", "--key", "--redrive", "-c", "--plugins"), word).map((x) => [...x]);
const rest = fc.array(fc.oneof(flagAndValue, word.map((w) => [w])), { maxLength: 3 }).map((r) => r.flat());
const httpUrl = fc.constantFrom("http://127.0.0.1:1", "not a url", "http://[::1", "http://127.0.0.1:1/../..", "", "ftp://x");
/** Broker URLs that fail before any connection: tail would otherwise wait for Ctrl-C. */
const mqttUrl = fc.constantFrom("ws://x:99999", "not a url", "mqtt://", "http://[::1");
const config = fc.constantFrom("good.config.ts", "bad.config.ts", "missing.config.ts");

const argv = fc.oneof(
  fc.tuple(fc.constant("new"), word, rest).map(([c, n, r]) => [c, n, ...r]),
  fc.tuple(fc.constant("keys"), fc.constantFrom("create", "list", "revoke", "rotate", ""), config, rest).map(([c, s, f, r]) => [c, s, "--config", f, ...r]),
  fc.tuple(fc.constantFrom("check", "backup", "restore"), word, config, rest).map(([c, w, f, r]) => [c, w, "--config", f, ...r]),
  fc.tuple(fc.constantFrom("status", "deadletters"), word, httpUrl, rest).map(([c, w, u, r]) => [c, ...(c === "deadletters" ? [w] : []), "--url", u, ...r]),
  fc.tuple(fc.constant("events"), fc.constantFrom("tail", "head"), word, mqttUrl, fc.constantFrom([], ["--json"], ["--key", "k"])).map(([c, s, f, u, r]) => [c, s, f, "--url", u, ...r]),
  fc.tuple(fc.constantFrom("run", "--port", "--mqtt-port", "--log-level", "--data", "--plugins", "--watch"), word, rest).map(([a, b, r]) => [a, b, ...r]),
  fc.array(word, { minLength: 1, maxLength: 4 }),
);

/** The first line of a usage error: yargs' reasons and ours. */
const USAGE = /^(Unknown arguments?: |Not enough non-option arguments: got \d+, need at least \d+$|Too many non-option arguments: |Invalid values:$|--[\w-]+ given \d+ times: give it once$|plinth: keys revoke needs the key's id or name$|plinth: keys create needs at least one --role$)/;
/** What only a failure of the program itself prints: a stack, an engine error, a path into its source. */
const INTERNAL = new RegExp(`\\n\\s+at |\\.ts:\\d+|TypeError|RangeError|ReferenceError|SyntaxError|is not a function|is not an object|Cannot read propert|\\[object Object\\]|node_modules|${REPO.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/(runtime|config)/`);

async function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: Timer | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`still running after ${ms} ms`)), ms)));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

test("generated command lines in process: exit 0, 1 or 2 with a precise message, never a stack or a path into the program", async () => {
  using dir = tempDir("plinth-gen-cli-unit");
  writeFileSync(dir.join("platform.config.ts"), `export default { broker: { colour: "red" } };\n`);
  writeFileSync(dir.join("bad.config.ts"), `export default { gateway: { port: "eighty" } };\n`);
  writeFileSync(dir.join("good.config.ts"), `export default { data: { dir: "./data" }, log: { level: "silent" } };\n`);
  store(dir.join("data"), "orders");
  using _ = fakeFetch((req) => {
    throw new Error(`Unable to connect. Is the computer able to access the url? (${new URL(req.url).host})`);
  });
  const cwd = process.cwd();
  process.chdir(dir.path);
  try {
    const runs = await checkProperty(
      "cli-in-process",
      {
        runs: 300,
        ms: 2_500,
        examples: [
          [["deadletters", "x", "--url", "http://127.0.0.1:1", "--url", "http://127.0.0.1:2"]],
          [["keys", "create", "--config", "good.config.ts", "--role", "a", "--role", "b", "--name", "n", "--name", "m"]],
          [["-c", "good.config.ts", "--config", "good.config.ts"]],
          [["status", "--url", "not a url", "--key"]],
          [["deadletters", "x", "--url", "http://127.0.0.1:1", "--redrive", "--url"]],
          [["events", "tail", "events/#", "--url", "ws://x:99999", "--json", "--json"]],
        ],
      },
      [argv],
      async (args) => {
        const out: Outcome = await within(3_000, invoke(args));
        const said = `plinth ${JSON.stringify(args)} → ${out.code}\nstdout: ${out.stdout.slice(0, 500)}\nstderr: ${out.stderr.slice(0, 1000)}`;
        expect(`${out.stdout}\n${out.stderr}`, said).not.toMatch(INTERNAL);
        expect([0, 1, 2], said).toContain(out.code);
        if (out.code === 2) expect(out.stderr.split("\n")[0], said).toMatch(USAGE);
        // One line, or (an invalid config) one line and its fields, indented.
        if (out.code === 1) expect(out.stderr, said).toMatch(/^plinth: \S[^\n]*(\n {2}\S[^\n]*)*$/);
        if (out.code !== 0) expect(out.stdout, said).toBe("");
      },
    );
    expect(runs).toBeGreaterThan(30);
  } finally {
    process.chdir(cwd);
  }
}, 20_000);
