/**
 * The documented timeouts hold over real connections: a handler that never answers gets 504
 * PLT_TIMEOUT at gateway.requestTimeoutMs, a body that does not arrive gets 408 PLT_REQUEST_TIMEOUT,
 * and Bun's own idle timeout (10 s by default) never closes the connection first.
 */
import { describe, expect, test } from "bun:test";
import { idleTimeoutSeconds } from "../../../runtime/gateway/gateway";
import { boot } from "../../helpers/boot";
import { openRaw } from "../../helpers/raw-http";

const SLOW = {
  files: {
    "slow.ts": `import { definePlugin } from "plinth";
export default definePlugin({ name: "slow", version: "1.0.0", routes: {
  "GET /hang": () => new Promise(() => {}),
  "POST /": (ctx) => ({ got: ctx.body }),
} });
`,
  },
};

/** Both at once on their own connections: a request whose handler never answers, and a body sent one byte per `everyMs`. */
async function hangAndTrickle(port: number, everyMs: number, waitMs: number) {
  const hang = await openRaw(port);
  hang.write("GET /api/slow/hang HTTP/1.1\r\nHost: plinth.test\r\n\r\n");
  const trickle = await openRaw(port);
  trickle.write("POST /api/slow HTTP/1.1\r\nHost: plinth.test\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n");
  const drip = setInterval(() => trickle.write(" "), everyMs);
  try {
    const [[timedOut], [bodyLate]] = await Promise.all([hang.responses(1, waitMs), trickle.responses(1, waitMs)]);
    return { timedOut: timedOut!, bodyLate: bodyLate! };
  } finally {
    clearInterval(drip);
    hang.close();
    trickle.close();
  }
}

const code = (body: string) => (JSON.parse(body) as { error: { code: string } }).error.code;

describe("gateway.requestTimeoutMs", () => {
  test("a handler that never answers → 504 PLT_TIMEOUT; a body that does not arrive → 408 PLT_REQUEST_TIMEOUT", async () => {
    await using p = await boot(SLOW, { gateway: { requestTimeoutMs: 400 } });
    const started = performance.now();
    const { timedOut, bodyLate } = await hangAndTrickle(Number(new URL(p.url).port), 50, 10_000);
    expect([timedOut.status, code(timedOut.body)]).toEqual([504, "PLT_TIMEOUT"]);
    expect([bodyLate.status, code(bodyLate.body)]).toEqual([408, "PLT_REQUEST_TIMEOUT"]);
    expect(performance.now() - started).toBeGreaterThanOrEqual(350);
    // The platform answers on.
    expect((await p.req("/api/slow", { json: { a: 1 } })).status).toBe(200);
  });

  test(
    "past Bun's default idle timeout (10 s): still 504 and 408, not a closed connection",
    async () => {
      await using p = await boot(SLOW, { gateway: { requestTimeoutMs: 12_500 } });
      const { timedOut, bodyLate } = await hangAndTrickle(Number(new URL(p.url).port), 1_000, 20_000);
      expect([timedOut.status, code(timedOut.body)]).toEqual([504, "PLT_TIMEOUT"]);
      expect([bodyLate.status, code(bodyLate.body)]).toEqual([408, "PLT_REQUEST_TIMEOUT"]);
    },
    30_000,
  );
});

test("Bun's idle timeout follows gateway.requestTimeoutMs, and is turned off per request past Bun's 255 s", () => {
  expect(idleTimeoutSeconds(30_000)).toBe(35);
  expect(idleTimeoutSeconds(400)).toBe(10);
  expect(idleTimeoutSeconds(250_000)).toBe(255);
  expect(idleTimeoutSeconds(251_000)).toBe(0);
});
