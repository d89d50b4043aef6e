// The HTTP edge: request ids, problem+json for unknown routes, malformed and oversized bodies,
// validation errors naming the field, security headers, CORS, and a schema behind every route.
import http from 'node:http';
import Router from '@koa/router';
import { Type } from '@sinclair/typebox';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import { call, failOnResponseMismatches, startTestApp, type TestApp } from '../helpers/app';
import { createUser } from '../helpers/users';
import { declaredResponses, Problem } from '../../api/http/responses';
import { PROFILE_FORMATS } from '../../shared/users/profile-formats';
import { Strict } from '../../api/http/route';
import type { AppState } from '../../api/http/state';
import { createApp, type App } from '../../api/app';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ BODY_LIMIT_KB: '1' });
});
afterAll(() => t.close());

const isProblem = (r: { headers: Headers; body: any }, status: number) => {
  expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(r.body).toMatchObject({
    status,
    type: expect.stringMatching(/^urn:user-service:problem:/),
    title: expect.any(String),
    detail: expect.any(String),
  });
  expect(JSON.stringify(r.body)).not.toMatch(/at .*\.ts:\d+|node_modules|Error:/);
};

test('an unknown route is a 404 problem', async () => {
  const r = await call(`${t.url}/v1/nothing-here`);
  expect(r.status).toBe(404);
  isProblem(r, 404);
});

test('a known path with another method is a 405 problem naming the allowed methods', async () => {
  const login = await call(`${t.url}/v1/auth/login`, { method: 'GET' });
  expect(login.status).toBe(405);
  isProblem(login, 405);
  expect(login.headers.get('allow')).toBe('POST');
  expect(login.body.type).toBe('urn:user-service:problem:method_not_allowed');
  expect(login.body.detail).toBe('GET is not allowed here; allowed: POST.');

  const live = await call(`${t.url}/health/live`, { method: 'DELETE' });
  expect(live.status).toBe(405);
  isProblem(live, 405);
  const allowed = live.headers.get('allow')!.split(', ');
  expect(allowed).toEqual(expect.arrayContaining(['GET', 'HEAD']));
  expect(allowed).not.toContain('DELETE');
  for (const method of allowed) expect(live.body.detail).toContain(method);
});

test('a method the api implements nowhere is a 501 problem, not logged as a failure', async () => {
  const r = await call(`${t.url}/v1/auth/login`, { method: 'PROPFIND' });
  expect(r.status).toBe(501);
  isProblem(r, 501);
  expect(r.body.type).toBe('urn:user-service:problem:not_implemented');
  expect(r.headers.get('allow')).toBe('POST');
  expect(r.body.detail).toBe('PROPFIND is not implemented; allowed here: POST.');
  const logged = t.logs.entries().filter((e) => e.method === 'PROPFIND');
  expect(logged.map((e) => [e.msg, e.status])).toEqual([['request', 501]]);
});

test('malformed JSON is a 400 problem', async () => {
  const r = await call(`${t.url}/v1/nothing-here`, {
    method: 'POST',
    rawBody: '{"email": ',
    headers: { 'content-type': 'application/json' },
  });
  expect(r.status).toBe(400);
  isProblem(r, 400);
  expect(r.body.type).toBe('urn:user-service:problem:malformed_body');
});

test('a NUL in the query string is a 400 problem on a route that takes no input too, and declared there (issue 17)', async () => {
  const r = await call(`${t.url}/health/live?%00=1`);
  expect(r.status).toBe(400);
  isProblem(r, 400);
  expect(r.body.errors).toEqual([{ field: 'query', message: 'must not contain NUL (U+0000) in a property name' }]);
  // The answer matches the route's declaration (an undeclared status fails the test after it)...
  failOnResponseMismatches(t);
  // ...and the document says so.
  const doc = await call(`${t.url}/openapi.json`);
  expect(doc.body.paths['/health/live'].get.responses['400']).toBeDefined();
});

test('an oversized body is a 413 problem', async () => {
  const r = await call(`${t.url}/v1/nothing-here`, { method: 'POST', body: { filler: 'x'.repeat(4096) } });
  expect(r.status).toBe(413);
  isProblem(r, 413);
});

/** A raw request, so the body can be sent chunked (no Content-Length), as fetch never does. */
function chunked(url: string, path: string, contentType: string, body: string): Promise<{ status: number; type: string; text: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      `${url}${path}`,
      { method: 'POST', headers: { 'Content-Type': contentType, 'Transfer-Encoding': 'chunked' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), text }));
      },
    );
    request.on('error', reject);
    request.write(body.slice(0, 10));
    request.end(body.slice(10));
  });
}

test('a body that is not JSON is 415, chunked or not, and nothing signs in (red team #4)', async () => {
  const user = await createUser(t.context.db);
  const form = `email=${encodeURIComponent(user.email)}&password=${encodeURIComponent(user.password)}`;
  const sent = await chunked(t.url, '/v1/auth/login', 'application/x-www-form-urlencoded', form);
  expect(sent.status).toBe(415);
  expect(sent.type).toMatch(/^application\/problem\+json/);
  expect(sent.text).not.toContain('access_token');
  const plain = await call(`${t.url}/v1/auth/login`, { method: 'POST', rawBody: form, headers: { 'content-type': 'text/plain' } });
  expect(plain.status).toBe(415);
  expect(await t.context.db('sessions').where({ user_id: user.id }).first()).toBeUndefined();
  // JSON sent chunked is fine.
  const json = await chunked(t.url, '/v1/auth/login', 'application/json', JSON.stringify({ email: user.email, password: user.password }));
  expect(json.status).toBe(200);
});

test('every answer says Cache-Control: no-store, errors and pages included (red team #6)', async () => {
  for (const path of ['/v1/nothing-here', '/v1/users/me', '/docs', '/redoc', '/health/live']) {
    const r = await call(`${t.url}${path}`);
    expect([path, r.headers.get('cache-control')]).toEqual([path, 'no-store']);
  }
  const invalid = await call(`${t.url}/v1/auth/login`, { body: { email: 'not an email' } });
  expect([invalid.status, invalid.headers.get('cache-control')]).toEqual([400, 'no-store']);
  // What may be cached says so: the key set.
  expect((await call(`${t.url}/v1/auth/.well-known/jwks.json`)).headers.get('cache-control')).toBe('public, max-age=300');
});

test('a well-formed X-Request-Id is echoed; a malformed one is replaced', async () => {
  const mine = 'req-1234567890abcdef';
  const r1 = await call(`${t.url}/health/live`, { headers: { 'X-Request-Id': mine } });
  expect(r1.headers.get('x-request-id')).toBe(mine);
  const r2 = await call(`${t.url}/health/live`, { headers: { 'X-Request-Id': 'bad id with spaces <script>' } });
  expect(r2.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  const logged = t.logs.entries().find((e) => e.requestId === mine);
  expect(logged).toMatchObject({ route: '/health/live', status: 200 });
});

test('responses carry security headers and a strict CSP', async () => {
  const r = await call(`${t.url}/health/live`);
  expect(r.headers.get('x-content-type-options')).toBe('nosniff');
  expect(r.headers.get('strict-transport-security')).toMatch(/max-age=/);
  expect(r.headers.get('content-security-policy')).toBe("default-src 'none'; frame-ancestors 'none'");
  expect(r.headers.get('cache-control')).toBe('no-store');
});

test('CORS answers configured origins only', async () => {
  const allowed = await call(`${t.url}/health/live`, {
    method: 'OPTIONS',
    headers: { Origin: 'http://localhost:3000', 'Access-Control-Request-Method': 'POST' },
  });
  expect(allowed.headers.get('access-control-allow-origin')).toBe('http://localhost:3000');
  expect(allowed.headers.get('access-control-allow-credentials')).toBe('true');
  const other = await call(`${t.url}/health/live`, {
    method: 'OPTIONS',
    headers: { Origin: 'https://evil.example', 'Access-Control-Request-Method': 'POST' },
  });
  expect(other.headers.get('access-control-allow-origin')).toBeNull();
});

test('every route of the app is declared with its schemas in the registry', () => {
  const declared = new Set(t.app.registry.routes.map((r) => `${r.method.toUpperCase()} ${r.path}`));
  const mounted = t.app.routers.flatMap((router) =>
    router.stack.flatMap((layer) => layer.methods.filter((m) => m !== 'HEAD').map((m) => `${m} ${layer.path}`)),
  );
  expect(mounted.length).toBeGreaterThan(0);
  for (const route of mounted) expect(declared).toContain(route);
  for (const spec of t.app.registry.routes) {
    expect(Object.keys(spec.responses).length).toBeGreaterThan(0);
    if (['post', 'put', 'patch'].includes(spec.method)) expect(spec.body).toBeDefined();
    if (spec.path.includes(':')) expect(spec.params).toBeDefined();
  }
});

test('every route declares what it answers: a schema for each status with a body, problem+json for every error', () => {
  for (const spec of t.app.registry.routes) {
    const responses = Object.entries(declaredResponses(spec)).map(([status, response]) => ({ status: Number(status), ...response }));
    const route = `${spec.method.toUpperCase()} ${spec.path}`;
    expect([route, responses.some((r) => r.status < 400)]).toEqual([route, true]);
    for (const r of responses) {
      const answer = `${route} → ${r.status}`;
      if (r.status === 204 || (r.status >= 300 && r.status < 400))
        expect([answer, r.schema, r.contentType]).toEqual([answer, undefined, undefined]);
      else if (r.status < 300) expect([answer, !!(r.schema ?? r.contentType)]).toEqual([answer, true]);
      // Readiness answers 503 with its own report (for probes); every other error is a problem.
      else if (r.status < 500 || r.schema === Problem)
        expect([answer, r.schema, r.contentType]).toEqual([answer, Problem, 'application/problem+json']);
    }
  }
});

test('the OpenAPI document: login answers a token pair or an MFA challenge, errors are problem+json, bodies have examples', async () => {
  const doc = (await call(`${t.url}/openapi.json`)).body;
  const login = doc.paths['/v1/auth/login'].post;
  const shapes = login.responses['200'].content['application/json'].schema.oneOf;
  expect(shapes.map((shape: { required: string[] }) => shape.required)).toEqual([
    expect.arrayContaining(['access_token', 'refresh_token', 'session_id', 'user']),
    expect.arrayContaining(['mfa_required', 'mfa_token', 'expires_in']),
  ]);
  const ajv = addFormats(new Ajv({ strict: false }));
  for (const [name, validate] of Object.entries(PROFILE_FORMATS)) ajv.addFormat(name, { type: 'string', validate });
  for (const [path, operations] of Object.entries<Record<string, any>>(doc.paths)) {
    for (const [method, operation] of Object.entries<any>(operations)) {
      for (const [status, response] of Object.entries<any>(operation.responses)) {
        if (Number(status) >= 400 && Number(status) < 500)
          expect([path, method, status, response.content]).toEqual([
            path,
            method,
            status,
            { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
          ]);
      }
      if (!operation.requestBody) continue;
      const { schema, example } = operation.requestBody.content['application/json'];
      expect([path, method, example !== undefined]).toEqual([path, method, true]);
      expect([path, method, ajv.validate(schema, example), ajv.errors]).toEqual([path, method, true, null]);
    }
  }
  expect(doc.components.schemas.Problem.required).toEqual(expect.arrayContaining(['type', 'title', 'status', 'detail']));
});

test("the OpenAPI document's server is PUBLIC_BASE_URL, else the api's own port", async () => {
  expect((await call(`${t.url}/openapi.json`)).body.servers).toEqual([{ url: 'http://localhost:8001' }]);
  for (const [env, url] of [
    [{ PORT: '9123' }, 'http://localhost:9123'],
    [{ PORT: '9123', PUBLIC_BASE_URL: 'https://id.example.com/' }, 'https://id.example.com'],
  ] as const) {
    const other = await startTestApp(env);
    try {
      expect((await call(`${other.url}/openapi.json`)).body.servers).toEqual([{ url }]);
    } finally {
      await other.close();
    }
  }
});

test('an answer that does not match its declared schema fails the test that caused it', async () => {
  const scratch = createApp(t.context);
  const router = new Router<AppState>();
  scratch.registry.add(router, {
    method: 'get',
    path: '/v1/test/leaky',
    summary: 'answers more than it declares',
    tags: ['test'],
    security: 'none',
    responses: { 200: { description: 'a name', schema: Type.Object({ name: Type.String() }) } },
    handler(ctx) {
      ctx.body = { name: 'Asha', password_hash: '$2b$12$leaked' };
    },
  });
  scratch.koa.use(router.routes());
  const server = http.createServer(scratch.koa.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await call(`http://127.0.0.1:${(server.address() as { port: number }).port}/v1/test/leaky`);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    scratch.close();
  }
  expect(() => failOnResponseMismatches()).toThrow(/\/v1\/test\/leaky.*password_hash/);
  // Consumed: the check after this test finds nothing left.
  expect(() => failOnResponseMismatches()).not.toThrow();
});

describe('validation at the edge', () => {
  // A route declared like any feature's, mounted on a scratch router of the same app.
  const router = new Router<AppState>();
  let handled = 0;
  let url: string;
  let server: http.Server;
  let scratch: App;
  beforeAll(async () => {
    // A fresh app over the same context: Koa composes its middleware when the server starts.
    scratch = createApp(t.context);
    scratch.registry.add(router, {
      method: 'post',
      path: '/v1/test/echo/:id',
      summary: 'test',
      tags: ['test'],
      params: Strict({ id: Type.String({ format: 'uuid' }) }),
      query: Strict({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10 })) }),
      body: Strict({ email: Type.String({ format: 'email' }), age: Type.Optional(Type.Integer({ minimum: 0 })) }),
      responses: {
        200: { description: 'echo', schema: Type.Object({ body: Type.Unknown(), query: Type.Unknown(), params: Type.Unknown() }) },
      },
      handler(ctx, input) {
        handled += 1;
        ctx.body = input;
      },
    });
    scratch.koa.use(router.routes());
    server = http.createServer(scratch.koa.callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    scratch.close();
  });

  test('valid input reaches the handler, typed and coerced', async () => {
    const id = '8d6f1c9e-3f7a-4f4e-9d7b-2a1c3e5f7a9b';
    const r = await call(`${url}/v1/test/echo/${id}?limit=3`, { body: { email: 'a@example.com' } });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ body: { email: 'a@example.com' }, query: { limit: 3 }, params: { id } });
  });

  test('each bad field is named, and the handler never runs', async () => {
    const before = handled;
    const r = await call(`${url}/v1/test/echo/not-a-uuid?limit=99`, { body: { email: 'nope', age: -1, admin: true } });
    expect(r.status).toBe(400);
    isProblem(r, 400);
    const fields = r.body.errors.map((e: { field: string }) => e.field).sort();
    expect(fields).toEqual(['admin', 'age', 'email', 'params.id', 'query.limit']);
    expect(r.body.errors.find((e: { field: string }) => e.field === 'admin').message).toBe('is not allowed');
    expect(handled).toBe(before);
  });

  test('a body nested deeper than 32 levels is a 400 naming the limit, and the handler never runs (issue 17)', async () => {
    const before = handled;
    const rawBody = `{"email":"a@example.com","age":${'['.repeat(40)}${']'.repeat(40)}}`;
    const r = await call(`${url}/v1/test/echo/8d6f1c9e-3f7a-4f4e-9d7b-2a1c3e5f7a9b`, {
      method: 'POST',
      rawBody,
      headers: { 'content-type': 'application/json' },
    });
    expect(r.status).toBe(400);
    isProblem(r, 400);
    expect(r.body.errors).toEqual([{ field: 'body', message: 'must not nest deeper than 32 levels' }]);
    expect(handled).toBe(before);
  });

  test('a missing body is a 400 naming the required fields', async () => {
    const r = await call(`${url}/v1/test/echo/8d6f1c9e-3f7a-4f4e-9d7b-2a1c3e5f7a9b`, { method: 'POST' });
    expect(r.status).toBe(400);
    expect(r.body.errors).toEqual([{ field: 'email', message: 'is required' }]);
  });
});

describe('/metrics is not public (red team #14)', () => {
  test('with METRICS_PORT it is served on that listener only', async () => {
    const separate = await startTestApp({ METRICS_PORT: '0' });
    try {
      expect((await call(`${separate.url}/metrics`)).status).toBe(404);
      const scraped = await call(`${separate.metricsUrl!}/metrics`);
      expect(scraped.status).toBe(200);
      expect(scraped.text).toContain('http_requests_total');
      expect((await call(`${separate.metricsUrl!}/v1/auth/.well-known/jwks.json`)).status).toBe(404);
    } finally {
      await separate.close();
    }
  });

  test('outside development without METRICS_PORT it is not served at all; in development it stays on the api', async () => {
    const staging = await startTestApp({ ENVIRONMENT: 'staging', SMTP_HOST: '127.0.0.1', PASSWORD_BCRYPT_COST: '10' });
    try {
      expect((await call(`${staging.url}/metrics`)).status).toBe(404);
      expect(staging.metricsUrl).toBeUndefined();
    } finally {
      await staging.close();
    }
    expect((await call(`${t.url}/metrics`)).status).toBe(200);
  });
});
