// The one place errors become HTTP: problem+json (RFC 9457). Client mistakes keep their message;
// anything unexpected is logged with the request id and answered with a generic body, never a
// stack or an internal message. A dependency that is down answers 503.
import type { Context, Middleware } from 'koa';
import {
  AppError,
  MethodNotAllowedError,
  NotFoundError,
  NotImplementedError,
  PayloadTooLargeError,
  UnavailableError,
  type FieldError,
} from '../../shared/errors';
import { isDatabaseUnavailable } from '../../shared/db';
import { isRedisUnavailable } from '../../shared/redis';
import type { Logger } from '../../shared/logger';
import type { AppState } from './state';

export const PROBLEM_TYPE_BASE = 'urn:user-service:problem:';

export function writeProblem(ctx: Context, error: AppError): void {
  ctx.status = error.status;
  // Whatever the handler had said about caching before it failed, an error is never cached.
  ctx.set('Cache-Control', 'no-store');
  for (const [name, value] of Object.entries(error.headers)) ctx.set(name, value);
  ctx.type = 'application/problem+json';
  const body: {
    type: string;
    title: string;
    status: number;
    detail: string;
    instance: string;
    request_id?: string;
    errors?: FieldError[];
  } = {
    type: `${PROBLEM_TYPE_BASE}${error.code}`,
    title: error.title,
    status: error.status,
    detail: error.expose ? error.message : error.title,
    instance: ctx.path,
    request_id: (ctx.state as AppState).requestId,
  };
  if (error.errors) body.errors = error.errors;
  ctx.body = body;
}

/** Errors thrown by koa-body and other http-errors users carry a status and a type. */
function fromHttpError(err: {
  status?: number;
  statusCode?: number;
  type?: string;
  name?: string;
  expose?: boolean;
  message?: string;
}): AppError | null {
  const status = err.status ?? err.statusCode;
  if (!status || status < 400 || status >= 500) return null;
  if (status === 413) return new PayloadTooLargeError();
  if (status === 400 && (err.type === 'entity.parse.failed' || err.name === 'SyntaxError'))
    return new AppError(400, 'malformed_body', 'Malformed request body', 'The request body is not valid JSON.');
  if (status === 415) return new AppError(415, 'unsupported_media_type', 'Unsupported media type', 'Send the body as application/json.');
  return new AppError(
    status,
    `http_${status}`,
    'Bad request',
    err.expose && err.message ? err.message : 'The request cannot be processed.',
  );
}

/**
 * The router's own answers, which carry no body: no route (404), a path without this method (405)
 * or a method implemented nowhere (501); the last two come from `allowedMethods`, with `Allow`.
 */
function unansweredError(ctx: Context): AppError | null {
  if (ctx.body !== undefined) return null;
  const allowed = (ctx.response.get('Allow') || '').split(/,\s*/).filter(Boolean);
  if (ctx.status === 404) return new NotFoundError(`No route for ${ctx.method} ${ctx.path}.`, 'route_not_found');
  if (ctx.status === 405) return new MethodNotAllowedError(ctx.method, allowed);
  if (ctx.status === 501) return new NotImplementedError(ctx.method, allowed);
  return null;
}

export function problemMiddleware(logger: Logger): Middleware<AppState> {
  return async (ctx, next) => {
    try {
      await next();
      const unanswered = unansweredError(ctx);
      if (unanswered) throw unanswered;
    } catch (err) {
      let error: AppError;
      if (err instanceof AppError) error = err;
      else if (isDatabaseUnavailable(err) || isRedisUnavailable(err)) error = new UnavailableError(undefined, err);
      else error = fromHttpError(err as object) ?? new AppError(500, 'internal_error', 'Internal server error');
      const log = ctx.state.requestId ? logger.child({ requestId: ctx.state.requestId }) : logger;
      // A 5xx whose message may be shown (a method implemented nowhere) is the client's doing.
      if (error.status >= 500 && !error.expose)
        log.error({ err, status: error.status, method: ctx.method, route: ctx.state.routePattern ?? ctx.path }, 'request failed');
      writeProblem(ctx, error);
    }
  };
}
