/** Baseline: an Elysia route that hands each request to one Bun Worker over postMessage and awaits the reply. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Elysia } from "elysia";

// The worker's SQLite file, removed when this process ends (the bench stops it with SIGTERM).
const dataDir = mkdtempSync(join(tmpdir(), "plinth-baseline-"));
process.on("exit", () => rmSync(dataDir, { recursive: true, force: true }));
for (const signal of ["SIGTERM", "SIGINT"] as const) process.on(signal, () => process.exit(0));

const worker = new Worker(new URL("./echo-worker.ts", import.meta.url).href);
worker.postMessage({ op: "open", dir: dataDir });
const pending = new Map<number, (value: unknown) => void>();
let next = 0;
worker.onmessage = (e: MessageEvent<{ id: number; value: unknown }>) => {
  pending.get(e.data.id)?.(e.data.value);
  pending.delete(e.data.id);
};
const ask = (message: Record<string, unknown>) =>
  new Promise((resolve) => {
    const id = next++;
    pending.set(id, resolve);
    worker.postMessage({ id, ...message });
  });

const app = new Elysia()
  .get("/echo", () => ask({ op: "echo" }))
  .post("/items", ({ body }) => ask({ op: "insert", v: (body as { v: string }).v }))
  .get("/items/:id", ({ params }) => ask({ op: "select", item: Number(params.id) }))
  .listen({ port: 0, hostname: "127.0.0.1" });
console.log(`listening http://127.0.0.1:${app.server!.port}`);
