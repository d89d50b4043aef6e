// Google sign-in's settings: the feature flag (endpoints and document), the rate limits, a
// provider that never answers (timeout) and an app without client credentials.
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { call, startTestApp, type TestApp } from '../helpers/app';
import { startFakeGoogle, type FakeGoogle } from '../helpers/oidc-provider';
import { googleEnvironment, startSignIn } from '../helpers/google';

let google: FakeGoogle;
beforeAll(async () => {
  google = await startFakeGoogle();
});
afterAll(() => google.close());

async function withApp(env: Record<string, string>, run: (t: TestApp) => Promise<void>): Promise<void> {
  const t = await startTestApp(env);
  try {
    await run(t);
  } finally {
    await t.close();
  }
}

const SIGN_IN_PATHS = ['/v1/auth/oauth/google', '/v1/auth/oauth/google/callback'];

test('FEATURE_GOOGLE_OAUTH=false: both endpoints 404 and absent from /openapi.json; unlinking stays', async () => {
  await withApp(googleEnvironment(google, { FEATURE_GOOGLE_OAUTH: 'false' }), async (t) => {
    expect((await startSignIn(t)).status).toBe(404);
    expect((await call(`${t.url}/v1/auth/oauth/google/callback`, { body: { code: 'c', state: 's' } })).status).toBe(404);
    expect((await call(`${t.url}/v1/auth/oauth/google/callback?code=c&state=s`)).status).toBe(404);
    const doc = await call(`${t.url}/openapi.json`);
    for (const path of SIGN_IN_PATHS) expect(doc.body.paths[path]).toBeUndefined();
    expect(doc.body.paths['/v1/users/me/identities/{provider}']).toBeDefined();
  });
});

test('with the flag on, /openapi.json documents both endpoints', async () => {
  await withApp(googleEnvironment(google), async (t) => {
    const doc = await call(`${t.url}/openapi.json`);
    expect(Object.keys(doc.body.paths['/v1/auth/oauth/google'])).toEqual(['post']);
    expect(Object.keys(doc.body.paths['/v1/auth/oauth/google/callback']).sort()).toEqual(['get', 'post']);
  });
});

test('starts and callbacks are limited per IP, each apart: 429 with Retry-After', async () => {
  await withApp(googleEnvironment(google, { RATELIMIT_OAUTH_ATTEMPTS: '2' }), async (t) => {
    expect((await startSignIn(t)).status).toBe(200);
    expect((await startSignIn(t)).status).toBe(200);
    const limited = await startSignIn(t);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    const callback = () => call(`${t.url}/v1/auth/oauth/google/callback`, { body: { code: 'some-code', state: 'some-state' } });
    expect((await callback()).status).toBe(400);
    expect((await callback()).status).toBe(400);
    expect((await callback()).status).toBe(429);
  });
});

test('a provider that never answers: 503 once GOOGLE_OAUTH_TIMEOUT_SECONDS pass', async () => {
  const sockets: net.Socket[] = [];
  const silent = net.createServer((socket) => void sockets.push(socket));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  try {
    const issuer = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    await withApp({ ...googleEnvironment(google), GOOGLE_OAUTH_ISSUER: issuer, GOOGLE_OAUTH_TIMEOUT_SECONDS: '1' }, async (t) => {
      const began = Date.now();
      const r = await startSignIn(t);
      expect(r.status).toBe(503);
      expect(Date.now() - began).toBeLessThan(5000);
    });
  } finally {
    for (const socket of sockets) socket.destroy();
    silent.close();
  }
});

test('without client credentials: 503, and the provider is not asked', async () => {
  await withApp(googleEnvironment(google, { GOOGLE_OAUTH_CLIENT_ID: '', GOOGLE_OAUTH_CLIENT_SECRET: '' }), async (t) => {
    const before = google.requests.length;
    expect((await startSignIn(t)).status).toBe(503);
    expect(google.requests.length).toBe(before);
  });
});
