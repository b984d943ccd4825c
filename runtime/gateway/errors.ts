/** Every gateway error as HTTP: `{ error: { code, message, data? } }` with its catalog status and headers. */
import { PlinthError } from "../errors";

export function errorResponse(error: PlinthError, extraHeaders: Record<string, string> = {}): Response {
  const headers: Record<string, string> = { ...extraHeaders };
  if (error.code === "PLT_BULKHEAD_FULL") {
    // Load shedding: one error object per service, raised again and again; its body is built once.
    headers["retry-after"] = retryAfter(error);
    let text = shed.get(error);
    if (text === undefined) shed.set(error, (text = JSON.stringify(bodyOf(error))));
    headers["content-type"] = "application/json;charset=utf-8";
    return new Response(text, { status: error.status, headers });
  }
  const body = bodyOf(error);
  if (RETRY_AFTER.has(error.code) && (error.data as { retryInMs?: number } | undefined)?.retryInMs !== undefined) {
    headers["retry-after"] = retryAfter(error);
  }
  if (error.code === "PLT_UNAUTHENTICATED") headers["www-authenticate"] = challenge(error);
  if (error.code === "PLT_METHOD_NOT_ALLOWED") {
    const allow = (error.data as { allow?: string[] } | undefined)?.allow;
    if (allow) headers.allow = allow.join(", ");
  }
  return Response.json(body, { status: error.status, headers });
}

const shed = new WeakMap<PlinthError, string>();

/** Errors that say when to try again (`data.retryInMs`): an open breaker, a store that is full or unavailable. */
const RETRY_AFTER = new Set(["PLT_BREAKER_OPEN", "PLT_STORAGE_FULL", "PLT_STORAGE_UNAVAILABLE"]);

function bodyOf(error: PlinthError): { error: { code: string; message: string; data?: unknown } } {
  const body: { error: { code: string; message: string; data?: unknown } } = { error: { code: error.code, message: error.message } };
  if (error.data !== undefined) body.error.data = error.data;
  return body;
}

/** RFC 9110 §10.2.3, in whole seconds (at least 1): when the error's `data.retryInMs` says to try again. */
function retryAfter(error: PlinthError): string {
  const retryInMs = (error.data as { retryInMs?: number } | undefined)?.retryInMs ?? 1_000;
  return String(Math.max(1, Math.ceil(retryInMs / 1000)));
}

/** RFC 6750 §3: the challenge names what was wrong with the credentials, if any were sent. */
function challenge(error: PlinthError): string {
  const reason = (error.data as { reason?: string } | undefined)?.reason;
  if (reason !== "invalid_token" && reason !== "invalid_request") return 'Bearer realm="plinth"';
  return `Bearer realm="plinth", error="${reason}", error_description="${error.message.replaceAll('"', "'")}"`;
}
