/** Baseline: bare Elysia answering the same small JSON as the bench plugin's echo route. */
import { Elysia } from "elysia";

// /static: a static response Elysia builds once (the reference for a cache hit).
const app = new Elysia().get("/api/bench/echo", () => ({ ok: true })).get("/static", { ok: true }).listen({ port: 0, hostname: "127.0.0.1" });
console.log(`listening http://127.0.0.1:${app.server!.port}`);
