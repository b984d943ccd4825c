/**
 * Whatever fails inside the gateway, the client gets the JSON error body with the code only: never
 * Bun's development error page, a stack, a source line or a file path (they go to the log, once).
 */
import { expect, test } from "bun:test";
import { loadConfig } from "../../../config/load";
import type { Broker } from "../../../runtime/broker/broker";
import type { ApiPolicies } from "../../../runtime/gateway/routes";
import { createApp, startGateway, type GatewayApp } from "../../../runtime/gateway/gateway";
import type { Upstream } from "../../../runtime/gateway/upstream";
import { createLogger } from "../../../runtime/log";
import { tempDir } from "../../helpers/tmp";

const SECRET = "secret detail at /srv/plinth/runtime/secret.ts:12";

async function setup() {
  const dir = tempDir("plinth-gw-errors");
  const { config } = await loadConfig({ cwd: dir.path, overrides: { gateway: { port: 0 }, log: { level: "silent" } } });
  const lines: string[] = [];
  const log = createLogger({ level: "error", format: "json", write: (line) => lines.push(line) });
  return { config, log, lines, [Symbol.dispose]: () => dir[Symbol.dispose]() };
}

async function expectInternal(res: Response, lines: string[]) {
  expect(res.status).toBe(500);
  expect(res.headers.get("content-type")).toContain("application/json");
  const text = await res.text();
  expect(text).not.toContain("secret");
  expect(text).not.toContain("<");
  expect(JSON.parse(text)).toEqual({ error: { code: "PLT_INTERNAL", message: "internal error" } });
  expect(lines.filter((l) => l.includes(SECRET))).toHaveLength(1);
}

test("an error thrown out of the request handler: Bun.serve answers the JSON error body, not its error page", async () => {
  using s = await setup();
  const app: GatewayApp = {
    fetch() {
      throw new Error(SECRET);
    },
  };
  const gateway = startGateway(app, { handle() {} } as unknown as Broker, s.config, s.log);
  try {
    await expectInternal(await fetch(`${gateway.url}/api/anything`), s.lines);
  } finally {
    await gateway.stop(0);
  }
});

test("a rejected promise from the request handler: the same", async () => {
  using s = await setup();
  const gateway = startGateway({ fetch: () => Promise.reject(new Error(SECRET)) }, { handle() {} } as unknown as Broker, s.config, s.log);
  try {
    await expectInternal(await fetch(`${gateway.url}/health`), s.lines);
  } finally {
    await gateway.stop(0);
  }
});

test("an error in a route Elysia serves (/health) is the JSON error body, logged once", async () => {
  using s = await setup();
  const loader = {
    onCommit() {},
    describe() {
      throw new TypeError(SECRET);
    },
  } as unknown as Upstream;
  const app = createApp(loader, s.config, s.log, {} as ApiPolicies);
  await expectInternal(await app.fetch(new Request("http://plinth.test/health")), s.lines);
});
