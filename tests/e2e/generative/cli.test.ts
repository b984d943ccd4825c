/**
 * Generated command lines for the compiled binary: its commands with hostile names, flags and
 * values, unknown flags and stray words. The property: the process ends by itself with exit 0,
 * 1 (an error it names) or 2 (a usage error), or, for `run`, starts and serves; and nothing it
 * prints is a stack trace.
 */
import { expect, test } from "bun:test";
import { BINARY, ensureBinary } from "../../helpers/binary";
import { checkProperty, fc } from "../../helpers/property";
import { tempDir } from "../../helpers/tmp";

const word = fc.oneof(
  fc.constantFrom("", "-", "--", "-x", "--x", "=", "orders", "a".repeat(300), "../up", "/etc/passwd", "x/y", "Ünï", "\u{1f4a9}", "con", "0", "-1", "1e99", "NaN", "--help", "--version", "--no-watch", "--json"),
  fc.string({ maxLength: 12 }).map((s) => s.replace(/\0/g, "")),
);
const url = fc.constantFrom("http://127.0.0.1:1", "not a url", "ftp://x", "http://[::1", "http://127.0.0.1:1/../..", "", "mqtt://127.0.0.1:1", "ws://x:99999");
const port = fc.constantFrom("-1", "abc", "70000", "1.5", "", "0x50");

const argv = fc.oneof(
  fc.tuple(fc.constant("new"), word, fc.option(fc.tuple(fc.constant("--plugins"), word), { nil: undefined })).map(([c, n, p]) => [c, n, ...(p ?? [])]),
  fc.tuple(fc.constant("keys"), fc.constantFrom("create", "list", "revoke", "rotate", ""), fc.array(fc.oneof(fc.tuple(fc.constantFrom("--role", "--name", "--data", "--config"), word).map((x) => [...x]), word.map((w) => [w])), { maxLength: 3 })).map(([c, s, rest]) => [c, s, ...rest.flat()]),
  fc.tuple(fc.constantFrom("status", "deadletters"), word, url, fc.option(word, { nil: undefined })).map(([c, w, u, r]) => [c, ...(c === "deadletters" ? [w] : []), "--url", u, ...(r === undefined ? [] : ["--redrive", r])]),
  fc.tuple(fc.constant("events"), fc.constantFrom("tail", "head"), word, url).map(([c, s, f, u]) => [c, s, f, "--url", u]),
  fc.tuple(fc.constant("run"), fc.constantFrom("--port", "--mqtt-port"), port, fc.array(word, { maxLength: 2 })).map(([c, f, p, rest]) => [c, f, p, ...rest]),
  fc.tuple(fc.constantFrom("run", "--config", "--log-level", "--data"), word, fc.array(word, { maxLength: 2 })).map(([a, b, rest]) => [a, b, ...rest]),
  fc.array(word, { minLength: 1, maxLength: 4 }),
);

/** Runs the binary; a process still running after "platform ready" counts as started, and is stopped. */
async function run(cwd: string, args: string[]): Promise<{ code: number | null; out: string; started: boolean }> {
  const proc = Bun.spawn([BINARY, ...args], { cwd, stdin: "ignore", stdout: "pipe", stderr: "pipe", timeout: 10_000 });
  let out = "";
  let started = false;
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      out += decoder.decode(chunk, { stream: true });
      if (!started && /platform ready/.test(out)) {
        started = true;
        proc.kill("SIGTERM");
      }
    }
  };
  await Promise.all([pump(proc.stdout), pump(proc.stderr)]);
  return { code: await proc.exited, out, started };
}

test("generated command lines: exit 0, 1 or 2 with a message (or run serves), never a stack trace", async () => {
  ensureBinary();
  using dir = tempDir("plinth-gen-cli");
  const runs = await checkProperty("cli", { runs: 80, ms: 20_000 }, [argv], async (args) => {
    const { code, out, started } = await run(dir.path, args);
    const said = `plinth ${JSON.stringify(args)} → ${code}:\n${out.slice(0, 1500)}`;
    expect(out, said).not.toMatch(/\n\s+at \S.*:\d+:\d+|RangeError|TypeError|ReferenceError/);
    if (started) return;
    expect([0, 1, 2], said).toContain(code as number);
    if (code !== 0) expect(out.trim().length, `a message: ${said}`).toBeGreaterThan(0);
  });
  expect(runs).toBeGreaterThan(10);
}, 60_000);
