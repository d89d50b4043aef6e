// Google sign-in against a local OpenID Connect provider: the whole flow from the authorization
// URL to our token pair, by POST and by the browser's GET (JSON mode here; the redirect modes in
// google-browser.test.ts), a second sign-in of the same `sub`, and every refusal.
import { decodeJwt } from 'jose';
import { call, startTestApp, type Reply, type TestApp } from '../helpers/app';
import { startFakeGoogle, type FakeGoogle } from '../helpers/oidc-provider';
import { googleEnvironment, signInWithGoogle, startSignIn } from '../helpers/google';
import { streamEvents } from '../helpers/auth';
import { eventually } from '../helpers/app';

let google: FakeGoogle;
let t: TestApp;
beforeAll(async () => {
  google = await startFakeGoogle();
  t = await startTestApp(googleEnvironment(google));
  await t.startWorkers();
});
afterAll(async () => {
  await t.close();
  await google.close();
});
afterEach(() => {
  google.tamper = null;
  google.down = false;
});

const callbackUrl = () => `${t.url}/v1/auth/oauth/google/callback`;

describe('the full flow', () => {
  test('by POST: a new, active, verified user with the default role, amr google, and the events', async () => {
    const account = google.addAccount({ name: 'Asha Rao' });
    const r = await signInWithGoogle(t, google, account.sub);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      token_type: 'Bearer',
      user: { email: account.email, name: 'Asha Rao', email_verified: true, status: 'active', mfa_enabled: false, roles: ['trader'] },
    });
    expect(decodeJwt(r.body.access_token)).toMatchObject({ sub: r.body.user.id, sid: r.body.session_id, amr: ['google'] });
    const user = (await t.context.db('users').where({ id: r.body.user.id }).first())!;
    expect(user).toMatchObject({ password_hash: null, email_verified: true, status: 'active' });

    const me = await call(`${t.url}/v1/users/me`, { headers: { Authorization: `Bearer ${r.body.access_token}` } });
    expect(me.status).toBe(200);
    expect(me.body.identities).toEqual([{ provider: 'google', email: account.email, linked_at: expect.any(String) }]);
    expect(me.body.has_password).toBe(false);

    const events = await eventually(async () => {
      const all = (await streamEvents(t.context.redis, t.config.events.streamName)).filter((e) => e.payload.user_id === user.id);
      return all.length >= 3 && all;
    });
    expect(events.map((e) => [e.type, e.payload.data])).toEqual(
      expect.arrayContaining([
        ['user.registered', { method: 'google' }],
        ['session.created', { session_id: r.body.session_id, persistent: false }],
        ['user.login', { session_id: r.body.session_id, method: 'google', new_device: true }],
      ]),
    );
  });

  test('a second sign-in of the same sub reaches the same user; the refresh token works', async () => {
    const account = google.addAccount({});
    const first = await signInWithGoogle(t, google, account.sub);
    const second = await signInWithGoogle(t, google, account.sub);
    expect(second.status).toBe(200);
    expect(second.body.user.id).toBe(first.body.user.id);
    expect(second.body.session_id).not.toBe(first.body.session_id);
    expect(await t.context.db('users').where({ email: account.email }).count({ n: '*' })).toEqual([{ n: 1 }]);
    const refreshed = await call(`${t.url}/v1/auth/refresh`, { body: { refresh_token: second.body.refresh_token } });
    expect(refreshed.status).toBe(200);
    expect(decodeJwt(refreshed.body.access_token).amr).toEqual(['google']);
  });

  test('by the browser GET, without redirect URLs: the same JSON answer and the refresh cookie', async () => {
    const account = google.addAccount({});
    const r = await signInWithGoogle(t, google, account.sub, { method: 'GET' });
    expect(r.status).toBe(200);
    expect(r.body.user.email).toBe(account.email);
    expect(r.headers.getSetCookie().some((c) => c.startsWith(`${t.config.cookie.name}=${r.body.refresh_token}`))).toBe(true);
  });

  test('the authorization URL asks for openid email profile, S256 PKCE and a nonce; the state is 256 bits', async () => {
    const started = await startSignIn(t);
    expect(started.status).toBe(200);
    const url = new URL(started.body.authorization_url);
    expect(url.origin).toBe(google.issuer);
    expect(Object.fromEntries(url.searchParams)).toMatchObject({
      response_type: 'code',
      client_id: google.clientId,
      redirect_uri: google.redirectUri,
      scope: 'openid email profile',
      code_challenge_method: 'S256',
      state: started.body.state,
    });
    expect(url.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(url.searchParams.get('nonce')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(started.body.state, 'base64url')).toHaveLength(32);
  });

  test('a redirect URI that is not configured is refused', async () => {
    const r = await startSignIn(t, { redirect_uri: 'https://evil.example/cb' });
    expect(r.status).toBe(400);
    expect(r.body.errors).toEqual([{ field: 'redirect_uri', message: 'must be one of the configured redirect URIs' }]);
  });
});

describe('state refusals: 400 and no call to the provider', () => {
  async function expectNoProviderCall(send: () => Promise<Reply>): Promise<Reply> {
    const before = google.requests.length;
    const r = await send();
    expect(google.requests.length).toBe(before);
    return r;
  }

  test('a bad state', async () => {
    const r = await expectNoProviderCall(() => call(callbackUrl(), { body: { code: 'some-code', state: 'not-a-state-we-made' } }));
    expect(r.status).toBe(400);
    expect(r.body.type).toMatch(/invalid_state$/);
  });

  test('a missing state (browser callback)', async () => {
    const r = await expectNoProviderCall(() => call(`${callbackUrl()}?code=some-code`));
    expect(r.status).toBe(400);
    expect(r.body.type).toMatch(/invalid_state$/);
  });

  test('a reused state', async () => {
    const account = google.addAccount({});
    const started = await startSignIn(t);
    const back = await google.authorize(started.body.authorization_url, account.sub);
    const first = await call(callbackUrl(), { body: { code: back.query.code, state: back.query.state } });
    expect(first.status).toBe(200);
    const again = await expectNoProviderCall(() => call(callbackUrl(), { body: { code: back.query.code, state: back.query.state } }));
    expect(again.status).toBe(400);
    expect(again.body.type).toMatch(/invalid_state$/);
  });

  test('an expired state', async () => {
    const account = google.addAccount({});
    const started = await startSignIn(t);
    const back = await google.authorize(started.body.authorization_url, account.sub);
    // Ten minutes pass: Redis forgets the state.
    const keys = await t.context.redis.keys(`${t.config.redis.keyPrefix}oauth-state:*`);
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) expect(await t.context.redis.ttl(key)).toBeGreaterThan(590);
    await t.context.redis.del(...keys);
    const r = await expectNoProviderCall(() => call(callbackUrl(), { body: { code: back.query.code, state: back.query.state } }));
    expect(r.status).toBe(400);
    expect(r.body.type).toMatch(/invalid_state$/);
  });
});
