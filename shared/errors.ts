// One error hierarchy for the whole service. The api renders these as problem+json (RFC 9457) in
// one middleware; `expose` is false for 5xx so no internal message ever reaches a client.

export interface FieldError {
  field: string;
  message: string;
}

export class AppError extends Error {
  readonly status: number;
  /** Stable, machine-readable code; also the last segment of the problem `type`. */
  readonly code: string;
  readonly title: string;
  readonly expose: boolean;
  readonly errors?: FieldError[];
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    code: string,
    title: string,
    detail?: string,
    options: { errors?: FieldError[]; headers?: Record<string, string>; cause?: unknown; expose?: boolean } = {},
  ) {
    super(detail ?? title, { cause: options.cause });
    this.name = new.target.name;
    this.status = status;
    this.code = code;
    this.title = title;
    this.expose = options.expose ?? status < 500;
    this.errors = options.errors;
    this.headers = options.headers ?? {};
  }
}

export class ValidationError extends AppError {
  constructor(errors: FieldError[], detail = 'The request is not valid.') {
    super(400, 'validation_error', 'Invalid request', detail, { errors });
  }
}

export class BadRequestError extends AppError {
  constructor(code: string, detail: string) {
    super(400, code, 'Bad request', detail);
  }
}

export class UnauthorizedError extends AppError {
  constructor(detail = 'Authentication is required.', code = 'unauthorized') {
    super(401, code, 'Unauthorized', detail, { headers: { 'WWW-Authenticate': 'Bearer' } });
  }
}

export class ForbiddenError extends AppError {
  constructor(detail = 'You are not allowed to do this.', code = 'forbidden') {
    super(403, code, 'Forbidden', detail);
  }
}

export class NotFoundError extends AppError {
  constructor(detail = 'Not found.', code = 'not_found') {
    super(404, code, 'Not found', detail);
  }
}

/** The path exists, but not with this method; `Allow` lists the methods it has. */
export class MethodNotAllowedError extends AppError {
  constructor(method: string, allowed: string[]) {
    super(405, 'method_not_allowed', 'Method not allowed', `${method} is not allowed here; allowed: ${allowed.join(', ')}.`, {
      headers: { Allow: allowed.join(', ') },
    });
  }
}

/**
 * A method the api implements on no path (501, RFC 9110). The client's doing, not a fault of
 * ours: its detail is shown, and it is not logged as a failure.
 */
export class NotImplementedError extends AppError {
  constructor(method: string, allowed: string[]) {
    const detail = `${method} is not implemented${allowed.length ? `; allowed here: ${allowed.join(', ')}` : ''}.`;
    super(501, 'not_implemented', 'Not implemented', detail, {
      expose: true,
      ...(allowed.length > 0 && { headers: { Allow: allowed.join(', ') } }),
    });
  }
}

export class ConflictError extends AppError {
  constructor(detail: string, code = 'conflict') {
    super(409, code, 'Conflict', detail);
  }
}

export class GoneError extends AppError {
  constructor(detail: string, code = 'gone') {
    super(410, code, 'Gone', detail);
  }
}

export class PayloadTooLargeError extends AppError {
  constructor(detail = 'The request body is too large.') {
    super(413, 'payload_too_large', 'Payload too large', detail);
  }
}

export class RateLimitedError extends AppError {
  constructor(retryAfterSeconds: number, headers: Record<string, string> = {}, detail = 'Too many requests; try again later.') {
    super(429, 'rate_limited', 'Too many requests', detail, {
      headers: { 'Retry-After': String(Math.max(1, Math.ceil(retryAfterSeconds))), ...headers },
    });
  }
}

/** A dependency (PostgreSQL, Redis, a queue) cannot be reached: 503, the client may retry. */
export class UnavailableError extends AppError {
  constructor(detail = 'The service is temporarily unavailable; try again shortly.', cause?: unknown) {
    super(503, 'service_unavailable', 'Service unavailable', detail, { headers: { 'Retry-After': '5' }, cause });
  }
}

/**
 * A process cannot start (a port in use, a dependency that refuses us). Its message is the one line
 * an operator reads: the cause and what to do, never a stack trace.
 */
export class StartupError extends Error {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = 'StartupError';
  }
}

/** A command line the CLI cannot run as written (an unknown option, a missing value): exit 2, pointing at --help. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
