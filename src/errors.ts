/**
 * Errors that cross a boundary (HTTP response, job result) carry a stable snake_case `code`,
 * a sentence a user can act on, and a JSON pointer to the offending field when there is one.
 * The same classes are used by the API and the worker so a job fails with the code a
 * submission-time check would have produced.
 */
export interface ErrorBody {
  code: string;
  message: string;
  param: string | null;
}

export class GraftError extends Error {
  readonly code: string;
  readonly param: string | null;
  readonly statusCode: number;
  /** Extra machine-readable detail (e.g. the list of mismatched weights). */
  readonly details?: unknown;
  /** For 429/503: when trying again may help, sent as Retry-After. */
  readonly retryAfterSeconds?: number;

  constructor(code: string, message: string, opts: { param?: string | null; statusCode?: number; details?: unknown; retryAfterSeconds?: number } = {}) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.param = opts.param ?? null;
    this.statusCode = opts.statusCode ?? 400;
    if (opts.details !== undefined) this.details = opts.details;
    if (opts.retryAfterSeconds !== undefined) this.retryAfterSeconds = opts.retryAfterSeconds;
  }

  toJSON(): ErrorBody & { details?: unknown } {
    const body: ErrorBody & { details?: unknown } = { code: this.code, message: this.message, param: this.param };
    if (this.details !== undefined) body.details = this.details;
    return body;
  }
}

/** The request is malformed: wrong type, unknown field, invalid name or regex. */
export class ValidationError extends GraftError {
  constructor(code: string, message: string, param: string | null = null, details?: unknown) {
    super(code, message, { param, statusCode: 400, details });
  }
}

/** The request is well-formed but refers to things that do not fit (missing checkpoint, unknown layer...). */
export class UnprocessableError extends GraftError {
  constructor(code: string, message: string, param: string | null = null, details?: unknown) {
    super(code, message, { param, statusCode: 422, details });
  }
}

export class NotFoundError extends GraftError {
  constructor(code: string, message: string, param: string | null = null) {
    super(code, message, { param, statusCode: 404 });
  }
}

export class ConflictError extends GraftError {
  constructor(code: string, message: string, param: string | null = null) {
    super(code, message, { param, statusCode: 409 });
  }
}

/**
 * No usable API key: missing, malformed, unknown or revoked (issue 11). The message never echoes
 * the key; the route answers with `WWW-Authenticate: Bearer` (RFC 6750).
 */
export class UnauthorizedError extends GraftError {
  constructor(code: string, message: string) {
    super(code, message, { statusCode: 401 });
  }
}

/** The key is valid but its role may not do this (a reader writing, a member acting as admin). */
export class ForbiddenError extends GraftError {
  constructor(code: string, message: string, param: string | null = null) {
    super(code, message, { param, statusCode: 403 });
  }
}

/** The service is saturated for now (a pool queue is full); the request may be retried after `retryAfterSeconds`. */
export class UnavailableError extends GraftError {
  constructor(code: string, message: string, retryAfterSeconds: number) {
    super(code, message, { statusCode: 503, retryAfterSeconds });
  }
}

/** Start-up configuration is invalid; the message names the variable. */
export class ConfigError extends Error {
  readonly code = 'invalid_config';
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export function isGraftError(err: unknown): err is GraftError {
  return err instanceof GraftError;
}
