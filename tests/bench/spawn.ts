/** Starts a server process for a benchmark and waits for its ready line. */
export async function spawnReady(cmd: string[], cwd: string, pattern: RegExp) {
  const started = performance.now();
  const proc = Bun.spawn(cmd, { cwd, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  let text = "";
  const decoder = new TextDecoder();
  const read = async (s: ReadableStream<Uint8Array>) => {
    for await (const c of s) text += decoder.decode(c);
  };
  void read(proc.stdout);
  void read(proc.stderr);
  while (!pattern.test(text)) {
    if (proc.exitCode !== null) throw new Error(`${cmd[0]} exited:\n${text}`);
    if (performance.now() - started > 15_000) throw new Error(`${cmd[0]} not ready:\n${text}`);
    await Bun.sleep(2);
  }
  return { proc, text: () => text, readyMs: performance.now() - started };
}
