/**
 * What `npm run mutate` measures: each target is a set of runtime files to mutate and the test
 * files run against their mutants. Unit tests first; an integration file is listed only where
 * the units do not reach (a mutant no listed test reaches counts as "no coverage").
 */

export interface MutationTarget {
  /** the name on the command line and in the table */
  name: string;
  /** globs of files to mutate, from the project root */
  mutate: string[];
  /** test files, from the project root, fastest first */
  tests: string[];
}

export const TARGETS: MutationTarget[] = [
  {
    name: "runtime/breaker",
    mutate: ["runtime/breaker/*.ts"],
    tests: [
      "tests/runtime/breaker/window.test.ts",
      "tests/runtime/breaker/limit.test.ts",
      "tests/runtime/breaker/breaker.test.ts",
      "tests/runtime/breaker/bulkhead.test.ts",
      "tests/runtime/breaker/what-counts.test.ts",
      "tests/runtime/breaker/window-edges.test.ts",
      "tests/runtime/breaker/queue-expiry.test.ts",
      "tests/runtime/breaker/limit-memory.test.ts",
      "tests/runtime/breaker/guard-paths.test.ts",
      "tests/runtime/breaker/retry-backoff.test.ts",
      "tests/runtime/breaker/action-breakers.test.ts",
    ],
  },
  {
    name: "runtime/broker/acl",
    mutate: ["runtime/broker/acl.ts", "runtime/broker/acl-rules.ts"],
    tests: [
      "tests/runtime/broker/acl.test.ts",
      "tests/runtime/broker/acl-substitution.test.ts",
      "tests/runtime/broker/acl-actions.test.ts",
      "tests/runtime/broker/client-access.test.ts",
      "tests/runtime/broker/acl-log.test.ts",
      "tests/runtime/broker/broker.test.ts",
      "tests/integration/broker/deny.test.ts",
      "tests/integration/security.test.ts",
    ],
  },
  {
    name: "runtime/auth",
    mutate: ["runtime/auth/*.ts"],
    tests: [
      "tests/runtime/auth/jwt.test.ts",
      "tests/runtime/auth/keys.test.ts",
      "tests/runtime/auth/credentials.test.ts",
      "tests/runtime/auth/token-rules.test.ts",
      "tests/runtime/auth/key-rules.test.ts",
      "tests/runtime/auth/token-cache.test.ts",
      "tests/runtime/auth/key-lookup-handles.test.ts",
      "tests/runtime/broker/client-access.test.ts",
      "tests/integration/security.test.ts",
    ],
  },
  {
    name: "runtime/loader/delivery",
    mutate: ["runtime/loader/delivery.ts"],
    // The unit tests drive it with a fake subscriber, log and timer; the in-process platform
    // covers it against a real worker (rewind: a source's log going back; storage/faults: a
    // subscriber whose storage refuses writes).
    tests: [
      "tests/runtime/loader/delivery.test.ts",
      "tests/integration/events.test.ts",
      "tests/integration/delivery.test.ts",
      "tests/integration/storage/rewind.test.ts",
      "tests/integration/storage/faults.test.ts",
    ],
  },
  {
    name: "runtime/worker",
    mutate: ["runtime/worker/outbox.ts", "runtime/worker/unit.ts", "runtime/worker/entry.ts"],
    // entry.ts runs in a Worker: what a file's workers reach counts as reached by each of its tests,
    // so its mutants run whole files; entry.test.ts (the worker alone) comes first to kill them early.
    tests: [
      "tests/runtime/worker/outbox.test.ts",
      "tests/runtime/worker/unit.test.ts",
      "tests/runtime/worker/entry.test.ts",
      "tests/runtime/worker/relay.test.ts",
      "tests/runtime/worker/host.test.ts",
    ],
  },
  {
    name: "runtime/gateway",
    mutate: ["runtime/gateway/*.ts"],
    tests: [
      "tests/runtime/gateway/body.test.ts",
      "tests/runtime/gateway/cache.test.ts",
      "tests/runtime/gateway/ratelimit.test.ts",
      "tests/runtime/gateway/error-responses.test.ts",
      "tests/runtime/gateway/edge-shaping.test.ts",
      "tests/runtime/gateway/deadlines.test.ts",
      "tests/runtime/gateway/routes.test.ts",
      "tests/runtime/gateway/gateway.test.ts",
      "tests/runtime/gateway/health.test.ts",
      "tests/runtime/gateway/openapi.test.ts",
      // startGateway on a real socket: listening, the WebSocket upgrade, stopping; Bun.serve's error handler.
      "tests/runtime/gateway/listen.test.ts",
      "tests/integration/gateway/error-body.test.ts",
    ],
  },
];
