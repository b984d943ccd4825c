/** Every gateway error as HTTP: `{ error: { code, message, data? } }` with its catalog status and headers. */
import { PlinthError } from "../errors";

export function errorResponse(error: PlinthError, extraHeaders: Record<string, string> = {}): Response {
  const body: { error: { code: string; message: string; data?: unknown } } = { error: { code: error.code, message: error.message } };
  if (error.data !== undefined) body.error.data = error.data;
  const headers: Record<string, string> = { ...extraHeaders };
  if (error.code === "PLT_BREAKER_OPEN") {
    const retryInMs = (error.data as { retryInMs?: number } | undefined)?.retryInMs;
    if (retryInMs !== undefined) headers["retry-after"] = String(Math.max(1, Math.ceil(retryInMs / 1000)));
  }
  if (error.code === "PLT_UNAUTHENTICATED") headers["www-authenticate"] = challenge(error);
  if (error.code === "PLT_METHOD_NOT_ALLOWED") {
    const allow = (error.data as { allow?: string[] } | undefined)?.allow;
    if (allow) headers.allow = allow.join(", ");
  }
  return Response.json(body, { status: error.status, headers });
}

/** RFC 6750 §3: the challenge names what was wrong with the credentials, if any were sent. */
function challenge(error: PlinthError): string {
  const reason = (error.data as { reason?: string } | undefined)?.reason;
  if (reason !== "invalid_token" && reason !== "invalid_request") return 'Bearer realm="plinth"';
  return `Bearer realm="plinth", error="${reason}", error_description="${error.message.replaceAll('"', "'")}"`;
}
