/** What a spawned process writes on stdout and stderr, gathered as it comes. */
export function captureOutput(proc: { stdout: ReadableStream<Uint8Array>; stderr: ReadableStream<Uint8Array> }): () => string {
  let text = "";
  const decoder = new TextDecoder();
  const read = async (s: ReadableStream<Uint8Array>) => {
    for await (const c of s) text += decoder.decode(c, { stream: true });
  };
  void read(proc.stdout);
  void read(proc.stderr);
  return () => text;
}
