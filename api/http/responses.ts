// What each route may answer, and the check that it does. `declaredResponses` completes a route's
// own list with the problem+json answers every route of its kind can give (400 for bad input, 401
// and 403 behind authentication, 500 and 503 anywhere); the OpenAPI document is built from it, and
// in development (VALIDATE_RESPONSES) every answer is checked against it: a body that does not
// match the schema of its status, or a status that is not declared, is logged as an error (and the
// test suite fails on that log line).
import Ajv, { type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { Type, type TSchema } from '@sinclair/typebox';
import type { Middleware } from 'koa';
import type { Logger } from '../../shared/logger';
import type { ResponseSpec, RouteSpec } from './route';
import type { AppState } from './state';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** RFC 9457 problem details, as `writeProblem` renders every error. */
export const Problem = Type.Object(
  {
    type: Type.String({ description: 'urn:user-service:problem:<code>, a stable machine-readable code' }),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    instance: Type.String(),
    request_id: Type.Optional(Type.String()),
    errors: Type.Optional(
      Type.Array(Type.Object({ field: Type.String(), message: Type.String() }), { description: 'One per invalid field' }),
    ),
  },
  { additionalProperties: false },
);

const IMPLIED: Record<number, string> = {
  400: 'Invalid input (problem+json naming each field)',
  401: 'Missing or invalid credentials',
  403: 'Not allowed',
  413: 'The body is too large',
  415: 'The body is not application/json',
  500: 'Unexpected error',
  503: 'A dependency is down; retry later',
};

/** Every status the route can answer, with its content type and schema (problem+json for errors). */
export function declaredResponses(spec: RouteSpec): Record<number, ResponseSpec> {
  // 400 on every route, inputs declared or not: a NUL character anywhere in the query string is
  // refused on all of them (./strings.ts), and `?%00=1` reaches routes that take no query too.
  const implied = [400, 500, 503];
  if (spec.body) implied.push(413, 415);
  if (spec.security && spec.security !== 'none') implied.push(401, 403);
  const out: Record<number, ResponseSpec> = {};
  for (const status of implied) out[status] = { description: IMPLIED[status] };
  for (const [status, response] of Object.entries(spec.responses)) out[Number(status)] = response;
  for (const [status, response] of Object.entries(out)) {
    if (Number(status) >= 400 && !response.schema)
      out[Number(status)] = { ...response, schema: Problem, contentType: PROBLEM_CONTENT_TYPE };
  }
  return out;
}

/**
 * Our own check is stricter than the document: an object that does not say otherwise may not carry
 * properties its schema leaves out, so a field added by accident (a secret, a raw row) is caught.
 * Clients reading the document may still expect new fields to appear.
 */
function closed(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(closed);
  if (!schema || typeof schema !== 'object') return schema;
  const copy: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema))
    copy[key] = key === 'properties' ? Object.fromEntries(Object.entries(value as object).map(([k, v]) => [k, closed(v)])) : closed(value);
  if (copy.type === 'object' && copy.properties && !('additionalProperties' in copy)) copy.additionalProperties = false;
  return copy;
}

const ajv = addFormats(new Ajv({ allErrors: true, strict: false }));
const compiled = new WeakMap<TSchema, ValidateFunction>();

function validatorOf(schema: TSchema): ValidateFunction {
  let validate = compiled.get(schema);
  if (!validate) {
    validate = ajv.compile(closed(JSON.parse(JSON.stringify(schema))) as object);
    compiled.set(schema, validate);
  }
  return validate;
}

/** What is wrong with an answer, or an empty list. */
export function responseProblems(spec: RouteSpec, status: number, contentType: string, body: unknown): string[] {
  const declared = declaredResponses(spec)[status];
  const hasBody = body !== undefined && body !== null && body !== '';
  if (!declared) return [`status ${status} is not declared`];
  // A redirect's body is Koa's courtesy text; the Location header is the answer.
  if (status >= 300 && status < 400) return [];
  if (!declared.schema && !declared.contentType) return hasBody ? [`status ${status} declares no body, but one was sent`] : [];
  const expectedType = declared.contentType ?? 'application/json';
  const accepted = [expectedType, ...(declared.alsoContentTypes ?? [])];
  if (!accepted.some((type) => contentType.startsWith(type)))
    return [`content type ${contentType || '(none)'} instead of ${accepted.join(' or ')}`];
  if (!declared.schema || !/json/.test(expectedType)) return [];
  // A body may be JSON already serialised (the JWKS, say) or a stream we cannot read here.
  let value = body;
  if (typeof body === 'string') value = JSON.parse(body) as unknown;
  else if (Buffer.isBuffer(body) || (body && typeof (body as { pipe?: unknown }).pipe === 'function')) return [];
  const validate = validatorOf(declared.schema);
  if (validate(value)) return [];
  return (validate.errors ?? []).map(
    (e) =>
      `${e.instancePath || '(body)'} ${e.message ?? 'is invalid'}${e.params && 'additionalProperty' in e.params ? `: ${String(e.params.additionalProperty)}` : ''}`,
  );
}

export const RESPONSE_MISMATCH = 'response does not match its declared schema';

/** Checks every answer of a declared route after it is final (errors rendered included). */
export function responseCheck(logger: Logger): Middleware<AppState> {
  return async (ctx, next) => {
    await next();
    const spec = ctx.state.route;
    if (!spec) return;
    const problems = responseProblems(spec, ctx.status, ctx.response.get('Content-Type'), ctx.body);
    if (problems.length) {
      logger.error(
        { requestId: ctx.state.requestId, method: ctx.method, route: spec.path, status: ctx.status, problems },
        RESPONSE_MISMATCH,
      );
    }
  };
}
