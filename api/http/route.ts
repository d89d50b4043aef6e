// A route is declared once: method, path, schemas, responses and handler. The same declaration
// validates the request at the edge (ajv), types the handler's input (TypeBox `Static`), checks
// the answer in development (./responses.ts), and produces the OpenAPI document, so the document
// cannot drift from the code.
import Router, { type RouterContext } from '@koa/router';
import type { Middleware } from 'koa';
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { Type, type SchemaOptions, type Static, type TObject, type TProperties, type TSchema } from '@sinclair/typebox';
import { ValidationError, type FieldError } from '../../shared/errors';
import { lowerCaseUuids, nulCharacters, tooDeep } from './strings';
import { PROFILE_FORMATS } from '../../shared/users/profile-formats';
import type { AppState } from './state';

export type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

export interface ResponseSpec {
  description: string;
  schema?: TSchema;
  /** Defaults to application/json when a schema is given. */
  contentType?: string;
  /** Other content types the same status may answer with (a file in the format the client chose). */
  alsoContentTypes?: string[];
}

export interface Input<B extends TSchema, Q extends TSchema, P extends TSchema> {
  body: Static<B>;
  query: Static<Q>;
  params: Static<P>;
}

export type AppRouterContext = RouterContext<AppState>;

export interface RouteSpec<B extends TSchema = TSchema, Q extends TSchema = TSchema, P extends TSchema = TSchema> {
  method: Method;
  path: string;
  summary: string;
  tags: string[];
  /** How the caller proves who it is; for the document (the middleware enforces it). */
  security?: 'bearer' | 'none';
  body?: B;
  query?: Q;
  params?: P;
  responses: Record<number, ResponseSpec>;
  /** Runs before validation, so an anonymous caller gets 401 whatever it sent: authentication. */
  guard?: Middleware<AppState> | Middleware<AppState>[];
  handler(ctx: AppRouterContext, input: Input<B, Q, P>): Promise<void> | void;
}

/** An object schema that refuses unknown properties: "anything else in the body is refused". */
export const Strict = <T extends TProperties>(properties: T, options: SchemaOptions = {}): TObject<T> =>
  Type.Object(properties, { additionalProperties: false, ...options });

/** Exactly one of several shapes (JSON Schema `oneOf`; TypeBox's Union emits `anyOf`). */
export const OneOf = <T extends TSchema[]>(schemas: [...T], options: SchemaOptions = {}) =>
  Type.Unsafe<Static<T[number]>>({ ...options, oneOf: schemas });

function withFormats(ajv: Ajv): Ajv {
  addFormats(ajv);
  for (const [name, validate] of Object.entries(PROFILE_FORMATS)) ajv.addFormat(name, { type: 'string', validate });
  return ajv;
}

const bodyAjv = withFormats(new Ajv({ allErrors: true, strict: false }));
// Query strings and path parameters arrive as text.
const queryAjv = withFormats(new Ajv({ allErrors: true, strict: false, coerceTypes: true, useDefaults: true }));

const FORMAT_NAMES: Record<string, string> = {
  'e164-phone': 'phone number in E.164 form (+ and up to 15 digits)',
  'iana-timezone': 'IANA time zone (for example Asia/Kolkata)',
  'bcp47-locale': 'BCP 47 locale (for example en-IN)',
  'https-url': 'https URL',
  email: 'email address',
  uuid: 'UUID',
  'date-time': 'ISO 8601 date-time',
};

function fieldOf(prefix: string, err: ErrorObject): string {
  const path = err.instancePath.split('/').filter(Boolean).join('.');
  const extra = err.params as { missingProperty?: string; additionalProperty?: string };
  const leaf = extra.missingProperty ?? extra.additionalProperty;
  return [prefix === 'body' ? '' : prefix, path, leaf].filter(Boolean).join('.') || prefix;
}

function messageOf(err: ErrorObject): string {
  if (err.keyword === 'additionalProperties') return 'is not allowed';
  if (err.keyword === 'required') return 'is required';
  if (err.keyword === 'enum') return `must be one of: ${(err.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
  if (err.keyword === 'format')
    return `must be a valid ${FORMAT_NAMES[(err.params as { format: string }).format] ?? (err.params as { format: string }).format}`;
  return err.message ?? 'is invalid';
}

/** The first error of each field: one message a field is enough to fix it. */
function dedupe(errors: FieldError[]): FieldError[] {
  const seen = new Set<string>();
  return errors.filter((e) => (seen.has(e.field) ? false : (seen.add(e.field), true)));
}

function validator(ajv: Ajv, schema: TSchema | undefined, where: 'body' | 'query' | 'params'): (value: unknown) => FieldError[] {
  if (!schema) return () => [];
  const validate: ValidateFunction = ajv.compile(schema);
  return (value) =>
    validate(value) ? [] : (validate.errors ?? []).map((err) => ({ field: fieldOf(where, err), message: messageOf(err) }));
}

/** Every route registered through `addRoute`, in order; the OpenAPI document walks this list. */
export class RouteRegistry {
  readonly routes: RouteSpec[] = [];

  add<B extends TSchema, Q extends TSchema, P extends TSchema>(router: Router<AppState>, spec: RouteSpec<B, Q, P>): void {
    const checkBody = validator(bodyAjv, spec.body, 'body');
    const checkQuery = validator(queryAjv, spec.query, 'query');
    const checkParams = validator(queryAjv, spec.params, 'params');
    const validate: Middleware<AppState> = async (ctx, next) => {
      const request = ctx.request as typeof ctx.request & { body?: unknown };
      // Routes that take a body declare it (a test checks every POST, PUT and PATCH does); a
      // missing body is validated as {} so the required fields are named.
      const body: unknown = spec.body ? (request.body ?? {}) : undefined;
      const query = { ...ctx.query };
      const params = { ...(ctx as unknown as AppRouterContext).params };
      // Checked first and alone: the checks below recurse into the value.
      const deep = tooDeep(body, 'body');
      if (deep.length) throw new ValidationError(deep);
      const errors = [
        ...nulCharacters(params, 'params'),
        ...nulCharacters(query, 'query'),
        ...nulCharacters(body, 'body'),
        ...checkParams(params),
        ...checkQuery(query),
        ...checkBody(body),
      ];
      if (errors.length) throw new ValidationError(dedupe(errors));
      ctx.state.input = {
        body: lowerCaseUuids(spec.body, body),
        query: lowerCaseUuids(spec.query, query),
        params: lowerCaseUuids(spec.params, params),
      };
      await next();
    };
    const handle: Middleware<AppState> = async (ctx) => {
      await spec.handler(ctx as unknown as AppRouterContext, ctx.state.input as Input<B, Q, P>);
    };
    const declared: Middleware<AppState> = async (ctx, next) => {
      ctx.state.route = spec;
      await next();
    };
    const guards = spec.guard ? [spec.guard].flat() : [];
    router[spec.method](spec.path, declared, ...guards, validate, handle);
    this.routes.push(spec);
  }
}
