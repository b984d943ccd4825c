/**
 * Builds the single binary dist/plinth: the CLI entry plus the worker entries
 * (plugin workers and the WAL checkpointer: more entrypoints, so `new Worker(...)`
 * finds them inside the binary).
 * ESM format because the entry uses top-level await (needed by --bytecode).
 */
import { rmSync } from "node:fs";

const outfile = process.env.PLINTH_OUTFILE ?? "dist/plinth";
rmSync(outfile, { force: true });
const started = performance.now();
const result = await Bun.build({
  entrypoints: ["./runtime/main.ts", "./runtime/worker/entry.ts", "./runtime/bus/thread/entry.ts", "./runtime/storage/checkpointer-thread.ts"],
  compile: { outfile },
  format: "esm",
  minify: true,
  bytecode: true,
  sourcemap: "linked",
});
if (!result.success) {
  for (const log of result.logs) console.error(log);
  process.exit(1);
}
console.log(`built ${outfile} in ${Math.round(performance.now() - started)} ms`);
