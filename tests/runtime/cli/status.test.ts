/** `plinth status` (runtime/cli/status.ts) against answers of a platform's HTTP API, without a port: the table, health, failures, exit codes. */
import { describe, expect, test } from "bun:test";
import { keyHeader, status } from "../../../runtime/cli/status";
import { captured, invoke } from "./invoke";
import { fakeFetch, json } from "./fake-fetch";

const SERVICES = {
  services: [
    { name: "platform", version: "0.1.0", state: "ready", breaker: "closed", restarts: 0, origin: "builtin:platform" },
    { name: "orders", version: "1.10.0", state: "restarting", breaker: "open", restarts: 12, origin: "plugins/orders/index.ts" },
    { name: "x", state: "ready", breaker: "half-open", restarts: 3, origin: "plugins/x.ts" },
  ],
  failed: [{ origin: "plugins/broken.ts", error: { code: "PLT_PLUGIN_INVALID", message: "version: expected a semantic version" } }],
};

const HEALTH = {
  status: "degraded",
  version: "0.1.0",
  uptimeSeconds: 5,
  services: {
    platform: { state: "ready", version: "0.1.0", breaker: "closed", storage: "ok" },
    orders: { state: "restarting", version: "1.10.0", breaker: "open", storage: { reason: "disk full", code: "SQLITE_FULL", since: "2026-01-01T00:00:00.000Z" } },
  },
  broker: { storage: { reason: "read-only", code: "SQLITE_READONLY", since: "2026-01-02T00:00:00.000Z" } },
  failed: SERVICES.failed,
};

const platform = (health: unknown = HEALTH) => (req: Request) => {
  const path = new URL(req.url).pathname;
  if (path === "/api/platform/services") return json(SERVICES);
  if (path === "/health") return health === null ? new Response("not json", { status: 503 }) : json(health);
  return json({ error: { code: "PLT_NOT_FOUND", message: "no route" } }, 404);
};

const run = (url: string, key?: string) =>
  captured(async () => {
    process.exitCode = await status(url, key);
  });

describe("status", () => {
  test("health first, then the services as aligned columns, then failed plugins and failing stores; exit 0", async () => {
    using _ = fakeFetch(platform());
    const out = await run("http://127.0.0.1:3000");
    expect(out.code).toBe(0);
    expect(out.stderr).toBe("");
    expect(out.stdout).toBe(
      [
        "status: degraded",
        "",
        "SERVICE   VERSION  STATE       BREAKER    RESTARTS  FROM",
        "platform  0.1.0    ready       closed     0         builtin:platform",
        "orders    1.10.0   restarting  open       12        plugins/orders/index.ts",
        "x                  ready       half-open  3         plugins/x.ts",
        "",
        "failed to load: plugins/broken.ts",
        "  PLT_PLUGIN_INVALID: version: expected a semantic version",
        "",
        "storage failing: orders: disk full (SQLITE_FULL) since 2026-01-01T00:00:00.000Z",
        "",
        "storage failing: broker: read-only (SQLITE_READONLY) since 2026-01-02T00:00:00.000Z",
      ].join("\n"),
    );
  });

  test("without a readable /health: the table alone, still exit 0", async () => {
    using _ = fakeFetch(platform(null));
    const out = await run("http://127.0.0.1:3000");
    expect(out.code).toBe(0);
    expect(out.stdout.split("\n")[0]).toBe("SERVICE   VERSION  STATE       BREAKER    RESTARTS  FROM");
    expect(out.stdout).not.toContain("status:");
    expect(out.stdout).not.toContain("storage failing");
  });

  test("a healthy platform: no storage lines", async () => {
    using _ = fakeFetch(platform({ ...HEALTH, status: "ok", services: { platform: HEALTH.services.platform }, broker: { storage: "ok" } }));
    const out = await run("http://127.0.0.1:3000");
    expect(out.stdout).toStartWith("status: ok\n");
    expect(out.stdout).not.toContain("storage failing");
  });

  test("the key goes as x-api-key to the services list; a trailing slash of the URL is dropped", async () => {
    using fake = fakeFetch(platform());
    await run("http://h:1/", "plk_abc");
    expect(fake.sent.map((s) => s.url)).toEqual(["http://h:1/api/platform/services", "http://h:1/health", "http://h:1/api/platform/nodes"]);
    expect(fake.sent[0]!.headers["x-api-key"]).toBe("plk_abc");
    expect(fake.sent[2]!.headers["x-api-key"]).toBe("plk_abc");
    using none = fakeFetch(platform());
    await run("http://h:1");
    expect(none.sent[0]!.headers["x-api-key"]).toBeUndefined();
  });

  test("a platform that refuses: exit 1 with its status and error on one line", async () => {
    using _ = fakeFetch(() => json({ error: { code: "PLT_UNAUTHORIZED", message: "an API key or token is needed" } }, 401));
    expect(await run("http://h:1")).toEqual({ code: 1, stdout: "", stderr: "plinth: http://h:1 answered 401: PLT_UNAUTHORIZED: an API key or token is needed" });
  });

  test("an answer that is not JSON: exit 1 with the status alone", async () => {
    using _ = fakeFetch(() => new Response("<html>bad gateway</html>", { status: 502 }));
    expect(await run("http://h:1")).toEqual({ code: 1, stdout: "", stderr: "plinth: http://h:1 answered 502" });
  });

  test("nobody there: exit 1, cannot reach, with the reason", async () => {
    using _ = fakeFetch(() => {
      throw new Error("Unable to connect. Is the computer able to access the url?");
    });
    expect(await run("http://h:1")).toEqual({ code: 1, stdout: "", stderr: "plinth: cannot reach http://h:1: Unable to connect. Is the computer able to access the url?" });
  });
});

describe("keyHeader", () => {
  test("x-api-key for a key; nothing for none or an empty one", () => {
    expect(keyHeader("plk_1")).toEqual({ "x-api-key": "plk_1" });
    expect(keyHeader(undefined)).toEqual({});
    expect(keyHeader("")).toEqual({});
  });
});

describe("status through the command line", () => {
  test("--url and --key; the key from PLINTH_API_KEY when no --key", async () => {
    const before = process.env.PLINTH_API_KEY;
    using fake = fakeFetch(platform());
    try {
      process.env.PLINTH_API_KEY = "plk_env";
      expect((await invoke(["status", "--url", "http://h:2"])).code).toBe(0);
      expect((await invoke(["status", "--url", "http://h:2", "--key", "plk_flag"])).code).toBe(0);
      delete process.env.PLINTH_API_KEY;
      expect((await invoke(["status"])).code).toBe(0);
    } finally {
      if (before === undefined) delete process.env.PLINTH_API_KEY;
      else process.env.PLINTH_API_KEY = before;
    }
    const services = fake.sent.filter((s) => s.url.endsWith("/api/platform/services"));
    expect(services.map((s) => [s.url, s.headers["x-api-key"]])).toEqual([
      ["http://h:2/api/platform/services", "plk_env"],
      ["http://h:2/api/platform/services", "plk_flag"],
      ["http://127.0.0.1:3000/api/platform/services", undefined],
    ]);
  });
});
