/**
 * One owner per data folder (runtime/storage/lock.ts), and start-up errors about the folder in one
 * line: the compiled binary, a second process on the same folder, a holder killed with -9.
 */
import { expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { BINARY, runBinary, startBinary } from "../../helpers/binary";
import { writePlugins } from "../../helpers/plugins";
import { tempDir } from "../../helpers/tmp";

/** One line on stderr, naming what it must, and nothing of a stack trace or the runtime's files. */
function expectOneLine(stderr: string, ...names: Array<string | RegExp>): void {
  const lines = stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  for (const name of names) expect(lines[0]!).toMatch(name);
  expect(stderr).not.toMatch(/\n\s+at |\.ts:\d+|runtime\//);
}

test("a second plinth on the same data folder exits 1 naming the folder and the holder's PID; after kill -9 the folder is taken over", async () => {
  using dir = tempDir("plinth-e2e-lock");
  writePlugins(dir.join("plugins"), { examples: ["orders", "inventory", "notifications"] });
  const first = await startBinary(dir.path);
  const second = await runBinary(dir.path, ["run", "--port", "0", "--mqtt-port", "0"]);
  expect(second.code).toBe(1);
  expectOneLine(second.stderr, dir.join("data"), `pid ${first.proc.pid}`, /PLT_DATA_LOCKED/);
  // The first one never noticed: it still serves.
  expect((await fetch(`${first.url}/api/orders`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ sku: "apple", qty: 1 }) })).status).toBe(201);

  first.proc.kill("SIGKILL");
  await first.proc.exited;
  await using again = await startBinary(dir.path);
  expect((await fetch(`${again.url}/health`)).status).toBe(200);
});

test("a data folder that is a file, or that the process may not write, ends start-up in one line naming the path", async () => {
  using dir = tempDir("plinth-e2e-datadir");
  writePlugins(dir.join("plugins"), { examples: ["orders"] });
  writeFileSync(dir.join("platform.config.ts"), "export default {};\n");
  writeFileSync(dir.join("afile"), "");
  const notFolder = await runBinary(dir.path, ["run", "--port", "0", "--mqtt-port", "0", "--data", "afile/data"]);
  expect(notFolder.code).toBe(1);
  expectOneLine(notFolder.stderr, dir.join("afile/data"), /PLT_DATA_FOLDER/, /not a folder/);

  // Unwritable: as an unprivileged user (root may write anywhere), on a folder only root may write.
  mkdirSync(dir.join("locked"));
  chmodSync(dir.join("locked"), 0o555);
  chmodSync(dir.path, 0o755);
  const unprivileged = process.getuid?.() === 0 ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] : [];
  const proc = Bun.spawn([...unprivileged, BINARY, "run", "--port", "0", "--mqtt-port", "0", "--data", "locked/data"], {
    cwd: dir.path,
    stdout: "pipe",
    stderr: "pipe",
    timeout: 15_000,
  });
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  expect(code).toBe(1);
  expectOneLine(stderr, dir.join("locked/data"), /PLT_DATA_FOLDER/, /permission denied, EACCES/);
  expect(existsSync(dir.join("locked/data"))).toBe(false);
});
