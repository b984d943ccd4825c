/**
 * The one error catalog. Every error the platform raises carries a stable
 * code from this table; the HTTP status and retryability come with it.
 * Plugins raise their own codes with `new PlinthError(code, message, { status })`.
 */
export const ErrorCode = {
  PLT_CONFIG_INVALID: { status: 500, retryable: false },
  PLT_LISTEN_FAILED: { status: 500, retryable: false },
  PLT_DATA_FOLDER: { status: 500, retryable: false },
  PLT_DATA_LOCKED: { status: 500, retryable: false },
  PLT_STORAGE_CORRUPT: { status: 500, retryable: false },
  PLT_BAD_REQUEST: { status: 400, retryable: false },
  PLT_BAD_JSON: { status: 400, retryable: false },
  PLT_VALIDATION: { status: 400, retryable: false },
  PLT_NOT_FOUND: { status: 404, retryable: false },
  PLT_SERVICE_NOT_FOUND: { status: 404, retryable: false },
  PLT_ACTION_NOT_FOUND: { status: 404, retryable: false },
  PLT_METHOD_NOT_ALLOWED: { status: 405, retryable: false },
  PLT_UNAUTHENTICATED: { status: 401, retryable: false },
  PLT_FORBIDDEN: { status: 403, retryable: false },
  PLT_REQUEST_TIMEOUT: { status: 408, retryable: true },
  PLT_CONFLICT: { status: 409, retryable: false },
  PLT_BODY_TOO_LARGE: { status: 413, retryable: false },
  PLT_UNSUPPORTED_MEDIA_TYPE: { status: 415, retryable: false },
  PLT_RATE_LIMITED: { status: 429, retryable: true },
  PLT_HANDLER_ERROR: { status: 500, retryable: false },
  PLT_INTERNAL: { status: 500, retryable: false },
  PLT_EVENT_INVALID: { status: 500, retryable: false },
  PLT_PLUGIN_LOAD: { status: 500, retryable: false },
  PLT_PLUGIN_INVALID: { status: 500, retryable: false },
  PLT_PLUGIN_DUPLICATE: { status: 500, retryable: false },
  PLT_MIGRATION_FAILED: { status: 500, retryable: false },
  PLT_SERVICE_UNAVAILABLE: { status: 503, retryable: true },
  PLT_STORAGE_UNAVAILABLE: { status: 503, retryable: true },
  PLT_STORAGE_FULL: { status: 507, retryable: true },
  PLT_BREAKER_OPEN: { status: 503, retryable: true },
  PLT_BULKHEAD_FULL: { status: 503, retryable: true },
  PLT_SHUTTING_DOWN: { status: 503, retryable: true },
  PLT_TIMEOUT: { status: 504, retryable: true },
} as const satisfies Record<string, { status: number; retryable: boolean }>;

export type ErrorCode = keyof typeof ErrorCode;

export interface ErrorOptions {
  status?: number;
  retryable?: boolean;
  data?: unknown;
  cause?: unknown;
}

/** The plain shape an error takes on the wire (HTTP body, thread messages). */
export interface WireError {
  code: string;
  message: string;
  status: number;
  retryable: boolean;
  data?: unknown;
}

export class PlinthError extends Error {
  readonly code: string;
  readonly status: number;
  readonly retryable: boolean;
  readonly data: unknown;

  constructor(code: string, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "PlinthError";
    this.code = code;
    const known = (ErrorCode as Record<string, { status: number; retryable: boolean } | undefined>)[code];
    this.status = options.status ?? known?.status ?? 500;
    this.retryable = options.retryable ?? known?.retryable ?? false;
    this.data = options.data;
  }

  toWire(): WireError {
    const wire: WireError = { code: this.code, message: this.message, status: this.status, retryable: this.retryable };
    if (this.data !== undefined) wire.data = this.data;
    return wire;
  }

  static fromWire(wire: WireError): PlinthError {
    return new PlinthError(wire.code, wire.message, { status: wire.status, retryable: wire.retryable, data: wire.data });
  }

  /** Any thrown value as a PlinthError; unknown errors become PLT_HANDLER_ERROR. */
  static from(err: unknown, fallback: ErrorCode = "PLT_HANDLER_ERROR"): PlinthError {
    if (err instanceof PlinthError) return err;
    const message = err instanceof Error ? err.message : String(err);
    return new PlinthError(fallback, message, { cause: err });
  }
}

/** Shorthand for raising a catalog error. */
export function fail(code: ErrorCode, message: string, options?: ErrorOptions): never {
  throw new PlinthError(code, message, options);
}
