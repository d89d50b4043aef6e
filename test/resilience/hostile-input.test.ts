// Hostile input on every operation the API describes (issue 17): the operations come from the
// running app's /openapi.json, so a new endpoint is covered without editing this file. Every
// request is invalid for its operation (checked against the operation's own schema, or carrying a
// NUL character, which the service refuses everywhere), sent with an admin's bearer token where
// the operation asks for one so it reaches validation. Each must answer 4xx problem+json, and no
// row and no Redis key may change (rate-limit counters excepted: counting a refused request is
// their job).
import crypto from 'node:crypto';
import http from 'node:http';
import Ajv, { type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import fc from 'fast-check';
import { startTestApp, type TestApp } from '../helpers/app';
import { enableMfa, signedInUser, type SignedIn } from '../helpers/auth';
import { scanKeys } from '../../shared/redis';
import { PROFILE_FORMATS } from '../../shared/users/profile-formats';

const SEED = 1717;
const RUNS = 12;
const MB = 1024 * 1024;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
interface Schema {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  examples?: Json[];
  format?: string;
  enum?: Json[];
  [key: string]: unknown;
}
interface Parameter {
  in: 'path' | 'query';
  name: string;
  required?: boolean;
  schema: Schema;
}
interface Operation {
  method: string;
  path: string;
  bearer: boolean;
  parameters: Parameter[];
  body?: Schema;
}

function withFormats(ajv: Ajv): Ajv {
  addFormats(ajv);
  for (const [name, validate] of Object.entries(PROFILE_FORMATS)) ajv.addFormat(name, { type: 'string', validate });
  return ajv;
}
// The options of api/http/route.ts: bodies as sent, parameters as text coerced.
const bodyAjv = withFormats(new Ajv({ allErrors: true, strict: false }));
const paramAjv = withFormats(new Ajv({ allErrors: true, strict: false, coerceTypes: true }));

/** Iterative, so a body nested 10,000 deep is walked too. */
function hasNul(value: unknown): boolean {
  const stack = [value];
  while (stack.length) {
    const v = stack.pop();
    if (typeof v === 'string') {
      if (v.includes('\u0000')) return true;
    } else if (v && typeof v === 'object') {
      for (const [k, inner] of Object.entries(v)) {
        if (k.includes('\u0000')) return true;
        stack.push(inner);
      }
    }
  }
  return false;
}

/** Ajv validators compiled once per schema object. */
const compiled = new Map<unknown, ValidateFunction>();
function check(ajv: Ajv, schema: Schema, value: unknown): boolean {
  let validate = compiled.get(schema);
  if (!validate) compiled.set(schema, (validate = ajv.compile(schema)));
  return validate(value);
}

/** Invalid as the service sees it: against the schema, or holding a NUL character anywhere. */
const invalidBody = (op: Operation, body: unknown) =>
  hasNul(body) ||
  !check(bodyAjv, op.body!, JSON.parse(JSON.stringify(body, (_, v: unknown) => (v === Infinity || v === -Infinity ? 1e308 : v))));

function operations(doc: { paths: Record<string, Record<string, Record<string, unknown>>> }): Operation[] {
  const ops: Operation[] = [];
  for (const [path, methods] of Object.entries(doc.paths))
    for (const [method, op] of Object.entries(methods)) {
      const content = (op.requestBody as { content?: Record<string, { schema: Schema }> } | undefined)?.content;
      ops.push({
        method: method.toUpperCase(),
        path,
        bearer: ((op.security as Record<string, unknown>[] | undefined) ?? []).some((s) => 'bearer' in s || 'bearerAuth' in s),
        parameters: (op.parameters as Parameter[] | undefined) ?? [],
        body: content?.['application/json']?.schema,
      });
    }
  return ops;
}

/** A value of the parameter's schema that passes it (a UUID nobody has, an enum's first value). */
function validParam(p: Parameter): string {
  const s = p.schema;
  if (s.format === 'uuid') return crypto.randomUUID();
  if (typeof s.enum?.[0] === 'string') return s.enum[0];
  if (typeof s.examples?.[0] === 'string') return s.examples[0];
  if (s.type === 'integer' || s.type === 'number') return String(typeof s.minimum === 'number' ? s.minimum : 1);
  if (s.type === 'boolean') return 'true';
  if (typeof s.example === 'string') return s.example;
  return 'trader';
}

// ---- hostile values -----------------------------------------------------------------------

const SQL = ["' OR '1'='1", "'; DROP TABLE users; --", '1; SELECT pg_sleep(10)', "admin'--", '" OR ""="'];
const SCRIPT = ['<script>alert(1)</script>', '"><img src=x onerror=alert(1)>', 'javascript:alert(1)', '{{7*7}}', '${7*7}'];
const hostileString = fc.oneof(
  fc.constant(''),
  fc.constant('\u0000'),
  fc.string().map((s) => `${s}\u0000${s}`),
  fc.constant('\ud800'),
  fc.constant('a\udfffb\ud800'),
  fc.string({ unit: 'grapheme', minLength: 2000, maxLength: 4000 }),
  fc.constantFrom(...SQL, ...SCRIPT),
  fc.constant('𝕳'.repeat(5000)),
  fc.constant('../../../etc/passwd'),
);
// Numbers JSON can carry that a program may not expect; 1e999 is written raw (see `raw` below).
const hostileNumber = fc.constantFrom(-1, 0, -0.5, 2 ** 53 + 1, -(2 ** 63), 1e308, -1e308, 0.1);
const wrongTyped = fc.oneof(
  hostileNumber,
  fc.boolean(),
  fc.constant(null),
  fc.constant([]),
  fc.constant({}),
  fc.array(hostileString, { maxLength: 3 }),
  fc.dictionary(fc.constantFrom('__proto__', 'constructor', 'x'), hostileString, { maxKeys: 2 }),
);
const hostileValue = fc.oneof(hostileString, wrongTyped);
const hostileKey = fc.constantFrom('__proto__', 'constructor', 'prototype', 'x\u0000y', '', '\ud800', 'a'.repeat(300), "'; --");

const typeOf = (v: Json): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v === 'number' ? 'number' : typeof v);
const declaredTypes = (s: Schema | undefined): string[] => [s?.type ?? []].flat().map((t) => (t === 'integer' ? 'number' : t));

/** Arrays nested `levels` deep, written out only as text (walking them would need as deep a stack). */
class Deep {
  constructor(
    readonly levels: number,
    readonly kind: 'array' | 'object' = 'array',
  ) {}
  toJSON(): unknown {
    return [[[]]];
  }
}

/**
 * JSON text with own `__proto__` keys kept (JSON.stringify of a literal would drop them) and
 * the non-finite numbers JSON.parse still reads (1e999 is Infinity).
 */
function raw(value: unknown): string {
  if (value instanceof Deep)
    return value.kind === 'array'
      ? '['.repeat(value.levels) + ']'.repeat(value.levels)
      : '{"a":'.repeat(value.levels) + '1' + '}'.repeat(value.levels);
  if (value === Infinity) return '1e999';
  if (value === -Infinity) return '-1e999';
  if (Array.isArray(value)) return `[${value.map(raw).join(',')}]`;
  if (value && typeof value === 'object')
    return `{${Object.entries(value)
      .map(([k, v]) => `${JSON.stringify(k)}:${raw(v)}`)
      .join(',')}}`;
  return JSON.stringify(value);
}
/** Builds an object whose keys are own properties, `__proto__` included. */
function own(entries: [string, unknown][]): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const [k, v] of entries) Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  return o;
}

function example(op: Operation): Record<string, unknown> {
  const e = op.body?.examples?.[0];
  return e && typeof e === 'object' && !Array.isArray(e) ? { ...e } : {};
}

/**
 * Bodies for an operation, built from its schema: each field given a wrong type or a hostile
 * value, each required field left out, extra (and prototype-polluting) keys, non-objects. A
 * candidate that would still be valid (a script tag is a fine display name) gets an extra key,
 * so nothing sent can legitimately change anything.
 */
function hostileBodies(op: Operation): unknown[] {
  const props = Object.keys(op.body?.properties ?? {});
  const arb = fc.oneof(
    // Wrong type or hostile value for one declared field, the other fields from the example.
    ...(props.length
      ? [
          fc.tuple(fc.constantFrom(...props), hostileValue).map(([k, v]) => own([...Object.entries(example(op)), [k, v]])),
          fc
            .tuple(fc.constantFrom(...props), wrongTyped)
            .filter(([k, v]) => !declaredTypes(op.body!.properties![k]).includes(typeOf(v as Json)))
            .map(([k, v]) => own([...Object.entries(example(op)), [k, v]])),
        ]
      : []),
    // Extra keys, prototype-polluting ones among them.
    fc
      .array(fc.tuple(hostileKey, hostileValue), { minLength: 1, maxLength: 3 })
      .map((extra) => own([...Object.entries(example(op)), ...extra])),
    // Not an object at all.
    fc.oneof(fc.array(hostileValue, { maxLength: 3 }), fc.constant([example(op)])),
  );
  const bodies: unknown[] = fc.sample(arb, { seed: SEED, numRuns: RUNS });
  // Each required field missing in turn.
  for (const field of op.body?.required ?? []) {
    const body = example(op);
    delete body[field];
    bodies.push(body);
  }
  // Non-finite and oversized numbers in every field.
  for (const k of props)
    for (const n of [Infinity, -Infinity, Number.MAX_VALUE, -Number.MAX_VALUE]) bodies.push(own([...Object.entries(example(op)), [k, n]]));
  // Deep nesting, in a field and as the whole body.
  const deep = (levels: number) => new Deep(levels);
  for (const k of props.slice(0, 1)) bodies.push(own([...Object.entries(example(op)), [k, deep(10_000)]]));
  bodies.push(own([...Object.entries(example(op)), ['x', deep(10_000)]]));
  bodies.push(deep(10_000), new Deep(10_000, 'object'));
  return bodies.map((b) => (invalidBody(op, b) ? b : own([...Object.entries(b as object), ['unexpected_field', true]])));
}

/** Text that is not JSON, or JSON the service's parser must refuse. */
const MALFORMED = [
  // JSON, but not an object: never "no body" (which an all-optional schema would take as {}).
  'null',
  'true',
  '0',
  '"x"',
  '1e999',
  '{',
  '{"a":',
  '[1,]',
  "{'a':1}",
  '{"a":1}}',
  '{"a":1} trailing',
  'nul',
  '\u0000',
  '{"a":"\u0000',
  '\ufeff{',
  '{"a":"\\ud800"',
  '{"a":1e99999999999999999999',
  '{' + '"a":{'.repeat(10_000),
  '['.repeat(20_000),
];

// ---- what is stored -------------------------------------------------------------------------

async function snapshot(t: TestApp): Promise<{ tables: Record<string, string>; keys: Record<string, string> }> {
  const tables: Record<string, string> = {};
  const names = await t.context
    .db('information_schema.tables')
    .where({ table_schema: 'public', table_type: 'BASE TABLE' })
    .orderBy('table_name')
    .pluck('table_name');
  for (const name of names) {
    const { rows } = await t.context.db.raw(`SELECT * FROM "${name}" ORDER BY 1`);
    tables[name] = crypto.createHash('sha256').update(JSON.stringify(rows)).digest('hex');
  }
  const keys: Record<string, string> = {};
  const rateLimits = t.context.key('rl', '');
  for (const prefix of [t.config.redis.keyPrefix, `${t.config.queues.prefix}:`]) {
    for (const key of await scanKeys(t.context.redis, `${prefix}*`)) {
      if (key.startsWith(rateLimits)) continue;
      const dump = await t.context.redis.dumpBuffer(key);
      keys[key] = dump ? crypto.createHash('sha256').update(dump).digest('hex') : 'gone';
    }
  }
  return { tables, keys };
}

// ---- sending --------------------------------------------------------------------------------

interface Answer {
  status: number;
  type: string;
  text: string;
}

/** The answer's problem document, when it is one: RFC 9457 fields, its status the HTTP status. */
function problemOf(answer: Answer): boolean {
  try {
    const body = JSON.parse(answer.text) as Record<string, unknown>;
    return (
      body.status === answer.status &&
      typeof body.type === 'string' &&
      body.type.startsWith('urn:user-service:problem:') &&
      typeof body.title === 'string' &&
      typeof body.detail === 'string' &&
      !/at .*\.ts:\d+|node_modules/.test(answer.text)
    );
  } catch {
    return false;
  }
}

/** One request through node's http client: exact bytes, optionally chunked. */
function send(
  url: string,
  method: string,
  path: string,
  options: { body?: string | Buffer; contentType?: string; auth?: string; stepUp?: string; chunked?: boolean } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (options.contentType) headers['content-type'] = options.contentType;
    if (options.auth) headers.authorization = options.auth;
    if (options.stepUp) headers['x-verification-token'] = options.stepUp;
    const body = options.body === undefined ? undefined : Buffer.from(options.body);
    if (body && !options.chunked) headers['content-length'] = String(body.length);
    if (body && options.chunked) headers['transfer-encoding'] = 'chunked';
    // The path as given, not through WHATWG URL parsing, which would resolve a `%2E%2E` away.
    const { hostname, port } = new URL(url);
    const req = http.request({ hostname, port, path, method, headers, timeout: 20_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          type: String(res.headers['content-type'] ?? ''),
          text: Buffer.concat(chunks).toString('utf8'),
        }),
      );
    });
    req.on('timeout', () => req.destroy(new Error(`no answer to ${method} ${path} in 20 s`)));
    req.on('error', reject);
    if (body && options.chunked) {
      // Several chunks, split mid-token.
      const size = Math.max(1, Math.ceil(body.length / 3));
      for (let i = 0; i < body.length; i += size) req.write(body.subarray(i, i + size));
    } else if (body) req.write(body);
    req.end();
  });
}

// ---- the test -------------------------------------------------------------------------------

let t: TestApp;
let admin: SignedIn;
let ops: Operation[];
let stepUp: string;

beforeAll(async () => {
  // The session-liveness hint outlives the run, so it is not refilled midway (a refill is not a change).
  t = await startTestApp({ SESSION_LIVENESS_CACHE_SECONDS: '600' });
  admin = await signedInUser(t.context.db, t.url, { roles: ['admin'] });
  // Admin writes (and, with MFA on, every step-up route) want a step-up token first.
  const mfa = await enableMfa(t.url, admin);
  const verified = await send(t.url, 'POST', '/v1/mfa/totp/verify', {
    body: JSON.stringify({ code: await mfa.code() }),
    contentType: 'application/json',
    auth: `Bearer ${admin.accessToken}`,
  });
  expect(verified.status).toBe(200);
  stepUp = JSON.parse(verified.text).verification_token;
  // Caches that authentication fills (session liveness, the admin's permissions) are filled
  // before the first snapshot, by valid reads.
  const auth = `Bearer ${admin.accessToken}`;
  for (const path of ['/v1/users/me', '/v1/authz/permissions', '/v1/admin/users?limit=1'])
    expect((await send(t.url, 'GET', path, { auth })).status).toBe(200);
  const response = await fetch(`${t.url}/openapi.json`);
  ops = operations((await response.json()) as Parameters<typeof operations>[0]);
});
afterAll(async () => {
  await t?.close();
});

/** Percent-encodes a value, lone surrogates as their WTF-8 bytes (which no UTF-8 decoder accepts). */
function encode(value: string): string {
  return value
    .split(/([\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff])/)
    .map((part, i) => {
      // Dots too: a client would otherwise resolve `..` away before sending.
      if (i % 2 === 0) return encodeURIComponent(part).replace(/\./g, '%2E');
      const c = part.charCodeAt(0);
      return [0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f)].map((b) => `%${b.toString(16).toUpperCase()}`).join('');
    })
    .join('');
}

/** Fills the path's parameters: the given values, the rest valid. */
function pathOf(op: Operation, values: Record<string, string> = {}): string {
  return op.path.replace(/\{([^}]+)\}/g, (_, name: string) => {
    const p = op.parameters.find((x) => x.in === 'path' && x.name === name)!;
    return encode(values[name] ?? validParam(p));
  });
}

interface Case {
  what: string;
  path: string;
  body?: string | Buffer;
  contentType?: string;
  chunked?: boolean;
  /** The problem type it must answer with, when only one is right. */
  problem?: string;
}

/** Every hostile request for one operation. */
function cases(op: Operation): Case[] {
  const list: Case[] = [];
  const path = pathOf(op);
  // Wrong content types: the API takes JSON bodies only, on every operation.
  for (const [type, body] of [
    ['application/x-www-form-urlencoded', 'email=a%40b.c&password=x'],
    ['text/plain', '{"a":1}'],
    ['multipart/form-data; boundary=x', '--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--x--\r\n'],
    ['application/xml', '<a>1</a>'],
  ]) {
    list.push({ what: `content-type ${type}`, path, body, contentType: type, problem: 'unsupported_media_type' });
    list.push({ what: `chunked content-type ${type}`, path, body, contentType: type, chunked: true, problem: 'unsupported_media_type' });
  }
  // Bad path parameters: each one in turn, the others valid.
  for (const p of op.parameters.filter((x) => x.in === 'path')) {
    // Percent-encoding that decodes to nothing (sent as is).
    for (const bad of ['%', '%zz', '%E0%A4%A', '%C0%AF', '%00'])
      list.push({
        what: `path ${p.name}=${bad} (raw)`,
        path: op.path.replace(/\{([^}]+)\}/g, (_, name: string) =>
          name === p.name ? bad : encode(validParam(op.parameters.find((x) => x.in === 'path' && x.name === name)!)),
        ),
      });
    const values = fc
      .sample(
        fc.oneof(
          hostileString,
          fc.constantFrom('not-a-uuid', '00000000-0000-0000-0000-00000000000g', `${crypto.randomUUID()}x`, '0', '-1', 'NaN', '..'),
        ),
        {
          seed: SEED,
          numRuns: RUNS,
        },
      )
      .filter((v) => v !== '' && (v.includes('\u0000') || !check(paramAjv, p.schema, v)));
    for (const v of values)
      list.push({
        what: `path ${p.name}=${JSON.stringify(v.slice(0, 40))}`,
        path: pathOf(op, { [p.name]: v }),
        problem: 'validation_error',
      });
  }
  // Bad query parameters: each one in turn.
  for (const p of op.parameters.filter((x) => x.in === 'query')) {
    const values = fc
      .sample(
        fc.oneof(hostileString, fc.constantFrom('-1', '1e999', '99999999999999999999', 'NaN', 'Infinity', 'not-a-uuid', '[object Object]')),
        {
          seed: SEED,
          numRuns: RUNS,
        },
      )
      .filter((v) => v.includes('\u0000') || !check(paramAjv, p.schema, v));
    for (const v of values)
      list.push({
        what: `query ${p.name}=${JSON.stringify(v.slice(0, 40))}`,
        path: `${path}?${p.name}=${encode(v)}`,
        problem: 'validation_error',
      });
    // The parameter twice: an array where the schema says one value.
    const twice = [validParam(p), validParam(p)];
    if (!check(paramAjv, p.schema, twice))
      list.push({
        what: `query ${p.name} twice`,
        path: `${path}?${p.name}=${encode(twice[0])}&${p.name}=${encode(twice[1])}`,
        problem: 'validation_error',
      });
  }
  // NUL in a query string's name, and in each declared parameter (percent-encoded, as is).
  list.push({ what: 'query name %00', path: `${path}?%00=1`, problem: 'validation_error' });
  for (const p of op.parameters.filter((x) => x.in === 'query'))
    list.push({ what: `query ${p.name}=%00`, path: `${path}?${p.name}=a%00b`, problem: 'validation_error' });
  // Bodies, for the operations that take one (a GET's or an undeclared DELETE's body is never read).
  const reads = op.body || op.method === 'DELETE';
  if (reads) {
    for (const text of MALFORMED) {
      list.push({
        what: `malformed ${JSON.stringify(text.slice(0, 30))}`,
        path,
        body: text,
        contentType: 'application/json',
        problem: 'malformed_body',
      });
      list.push({
        what: `chunked malformed ${JSON.stringify(text.slice(0, 30))}`,
        problem: 'malformed_body',
        path,
        body: text,
        contentType: 'application/json',
        chunked: true,
      });
    }
  }
  if (op.body) {
    const props = Object.keys(op.body.properties ?? {});
    for (const body of hostileBodies(op)) {
      list.push({
        what: `body ${raw(body).slice(0, 80)}`,
        path,
        body: raw(body),
        contentType: 'application/json',
        problem: 'validation_error',
      });
    }
    // Two of them again as chunked bodies.
    for (const body of hostileBodies(op).slice(0, 2))
      list.push({
        what: `chunked body ${raw(body).slice(0, 80)}`,
        problem: 'validation_error',
        path,
        body: raw(body),
        contentType: 'application/json; charset=utf-8',
        chunked: true,
      });
    // 1 MB strings, in a field and as an extra key.
    const big = 'x'.repeat(MB);
    for (const k of [...props.slice(0, 1), 'x'])
      list.push({
        what: `1 MB string in ${k}`,
        path,
        body: raw(own([...Object.entries(example(op)), [k, big]])),
        contentType: 'application/json',
      });
    // Invalid UTF-8 bytes and a lone surrogate escape in a JSON string.
    for (const k of props.slice(0, 1)) {
      const prefix = Buffer.from(`{${JSON.stringify(k)}:"`);
      list.push({
        what: `invalid UTF-8 in ${k}`,
        problem: 'validation_error',
        path,
        body: Buffer.concat([prefix, Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('","unexpected_field":1}')]),
        contentType: 'application/json',
      });
    }
  }
  return list;
}

test('every operation of /openapi.json answers hostile input with 4xx problem+json and changes nothing', async () => {
  expect(ops.length).toBeGreaterThan(50);
  const failures: string[] = [];
  let sent = 0;
  const statuses = new Map<number, number>();
  for (const op of ops) {
    const auth = op.bearer ? `Bearer ${admin.accessToken}` : undefined;
    const before = await snapshot(t);
    for (const c of cases(op)) {
      sent += 1;
      let answer: Answer;
      try {
        answer = await send(t.url, op.method, c.path, {
          body: c.body,
          contentType: c.contentType,
          auth,
          stepUp: auth && stepUp,
          chunked: c.chunked,
        });
      } catch (err) {
        failures.push(`${op.method} ${op.path} ${c.what}: ${(err as Error).message}`);
        continue;
      }
      if (answer.status < 400 || answer.status >= 500 || !answer.type.startsWith('application/problem+json'))
        failures.push(`${op.method} ${op.path} ${c.what}: ${answer.status} ${answer.type}`);
      else if (!problemOf(answer)) failures.push(`${op.method} ${op.path} ${c.what}: not a problem document: ${answer.text.slice(0, 200)}`);
      else if (c.problem && !answer.text.includes(`"urn:user-service:problem:${c.problem}"`))
        failures.push(`${op.method} ${op.path} ${c.what}: not ${c.problem}: ${answer.status} ${answer.text.slice(0, 200)}`);
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
    }
    const after = await snapshot(t);
    for (const [table, hash] of Object.entries(after.tables))
      if (before.tables[table] !== hash) failures.push(`${op.method} ${op.path}: table ${table} changed`);
    const keys = new Set([...Object.keys(before.keys), ...Object.keys(after.keys)]);
    for (const key of keys) if (before.keys[key] !== after.keys[key]) failures.push(`${op.method} ${op.path}: Redis key ${key} changed`);
  }
  expect(sent).toBeGreaterThan(1000);
  expect(failures).toEqual([]);
  // Validation, not the guards, answered: the token and step-up token were good throughout.
  expect([...statuses.keys()].sort()).toEqual([400, 413, 415]);
  // The admin's session is still good: nothing sent above signed anyone out.
  const me = await send(t.url, 'GET', '/v1/users/me', { auth: `Bearer ${admin.accessToken}` });
  expect(me.status).toBe(200);
}, 120_000);
