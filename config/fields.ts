/**
 * The schemas shared by the platform config and a plugin's manifest: route
 * policies, rate limits and circuit breaker settings. Kept apart from the
 * config schema so that plugin workers, which check manifests, do not build it.
 */
import { Type as t, type Static } from "@sinclair/typebox";

/**
 * Circuit breaker settings. With defaults for the global section; without, for what a plugin or a
 * per-service/per-action override sets (so an override holds only what it names).
 */
export function breakerFields(withDefaults: boolean) {
  const d = (value: number) => (withDefaults ? { default: value } : {});
  return {
    /** Consecutive failures (5xx or timeouts) that open a target's breaker. */
    failureThreshold: t.Integer({ minimum: 1, ...d(5) }),
    /** How long an open breaker rejects calls before letting a probe through. */
    resetTimeoutMs: t.Integer({ minimum: 1, ...d(10_000) }),
    /** Probe calls allowed at once while half-open. */
    halfOpenMaxCalls: t.Integer({ minimum: 1, ...d(1) }),
    /** Rolling window the rates are computed over, and how many buckets it is kept in. */
    windowMs: t.Integer({ minimum: 1, ...d(10_000) }),
    buckets: t.Integer({ minimum: 1, maximum: 1000, ...d(10) }),
    /** Calls the window must hold before the rates below are judged. */
    minimumCalls: t.Integer({ minimum: 1, ...d(20) }),
    /** Failure rate (0–1) in the window that opens the breaker. */
    failureRate: t.Number({ exclusiveMinimum: 0, maximum: 1, ...d(0.5) }),
    /** A call slower than this counts as slow (it may still succeed)... */
    slowCallMs: t.Integer({ minimum: 1, ...d(5_000) }),
    /** ...and this rate (0–1) of slow calls in the window opens the breaker. */
    slowCallRate: t.Number({ exclusiveMinimum: 0, maximum: 1, ...d(1) }),
  };
}

/** A rate limit: `limit` requests per `windowMs`, refilled continuously (token bucket). */
export function rateLimit(options: { default?: { limit: number; windowMs: number } } = {}) {
  return t.Object(
    { limit: t.Integer({ minimum: 0 }), windowMs: t.Integer({ minimum: 1, default: 1_000 }) },
    { additionalProperties: false, ...options },
  );
}

/** Who may call a route: anyone, any authenticated caller, or callers holding one of the roles. */
export const Policy = (d?: "public" | "authenticated") =>
  t.Union([t.Literal("public"), t.Literal("authenticated"), t.Array(t.String({ minLength: 1 }), { minItems: 1 })], d ? { default: d } : {});
export type Policy = "public" | "authenticated" | string[];

/** What a plugin's `breaker` or a per-service/per-action override may set. */
export const BreakerOverride = t.Partial(t.Object(breakerFields(false), { additionalProperties: false }));
export type BreakerOverride = Static<typeof BreakerOverride>;
