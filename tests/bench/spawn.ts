/** Starts a server process for a benchmark and waits for its ready line. */
import { captureOutput } from "../helpers/output";
export async function spawnReady(cmd: string[], cwd: string, pattern: RegExp) {
  const started = performance.now();
  const proc = Bun.spawn(cmd, { cwd, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const text = captureOutput(proc);
  while (!pattern.test(text())) {
    if (proc.exitCode !== null) throw new Error(`${cmd[0]} exited:\n${text()}`);
    if (performance.now() - started > 15_000) throw new Error(`${cmd[0]} not ready:\n${text()}`);
    await Bun.sleep(2);
  }
  return { proc, text, readyMs: performance.now() - started };
}
