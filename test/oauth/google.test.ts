// Google sign-in against a local OpenID Connect provider: the whole flow from the authorization
// URL to our token pair, by POST and by the browser's GET (JSON mode here; the redirect modes in
// google-browser.test.ts), a second sign-in of the same `sub`, and every refusal.
import { decodeJwt } from 'jose';
import { call, startTestApp, type Reply, type TestApp } from '../helpers/app';
import { startFakeGoogle, type FakeGoogle } from '../helpers/oidc-provider';
import { bindingCookie, googleEnvironment, signInWithGoogle, startSignIn } from '../helpers/google';
import { login, streamEvents } from '../helpers/auth';
import { eventually } from '../helpers/app';
import { createUser } from '../helpers/users';
import { hashOpaqueToken } from '../../shared/crypto/access-tokens';
import { scanKeys, unlinkKeys } from '../../shared/redis';

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

  test('two first sign-ins of one new sub at once: one user, both signed in', async () => {
    const account = google.addAccount({});
    const flows = await Promise.all(
      [1, 2].map(async () => {
        const started = await startSignIn(t);
        return google.authorize(started.body.authorization_url, account.sub);
      }),
    );
    const answers = await Promise.all(
      flows.map((back) => call(callbackUrl(), { body: { code: back.query.code, state: back.query.state } })),
    );
    expect(answers.map((r) => r.status)).toEqual([200, 200]);
    expect(answers[0].body.user.id).toBe(answers[1].body.user.id);
    expect(await t.context.db('auth_providers').where({ provider_user_id: account.sub }).count({ n: '*' })).toEqual([{ n: 1 }]);
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

  test('the discovery document and the key set are read once, not at every sign-in', async () => {
    for (let i = 0; i < 2; i++) expect((await signInWithGoogle(t, google, google.addAccount({}).sub)).status).toBe(200);
    const reads = (path: string) => google.requests.filter((p) => p === path).length;
    expect(reads('/.well-known/openid-configuration')).toBe(1);
    expect(reads('/jwks')).toBe(1);
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

  test('the browser callback from another browser (login CSRF): 400 browser_mismatch, the state is spent', async () => {
    const started = await startSignIn(t);
    const cookie = started.headers.getSetCookie().find((c) => c.startsWith('google_oauth_binding='))!;
    expect(cookie).toMatch(/path=\/v1\/auth\/oauth\/google\/callback/i);
    expect(cookie).toMatch(/httponly/i);
    expect(cookie).toMatch(/samesite=lax/i);
    const back = await google.authorize(started.body.authorization_url, google.addAccount({}).sub);
    const other = bindingCookie(await startSignIn(t));
    const withoutCookie = await expectNoProviderCall(() => call(`${callbackUrl()}${back.callbackUrl.search}`, { headers: other }));
    expect(withoutCookie.status).toBe(400);
    expect(withoutCookie.body.type).toMatch(/browser_mismatch$/);
    const again = await expectNoProviderCall(() => call(`${callbackUrl()}${back.callbackUrl.search}`, { headers: bindingCookie(started) }));
    expect(again.body.type).toMatch(/invalid_state$/);
  });

  test('the browser callback without the cookie: 400 browser_mismatch', async () => {
    const started = await startSignIn(t);
    const back = await google.authorize(started.body.authorization_url, google.addAccount({}).sub);
    const r = await expectNoProviderCall(() => call(`${callbackUrl()}${back.callbackUrl.search}`));
    expect(r.status).toBe(400);
    expect(r.body.type).toMatch(/browser_mismatch$/);
  });

  test('an expired state', async () => {
    const account = google.addAccount({});
    const started = await startSignIn(t);
    const back = await google.authorize(started.body.authorization_url, account.sub);
    // Ten minutes pass: Redis forgets the state.
    const keys = await scanKeys(t.context.redis, `${t.config.redis.keyPrefix}oauth-state:*`);
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) expect(await t.context.redis.ttl(key)).toBeGreaterThan(590);
    await unlinkKeys(t.context.redis, keys);
    const r = await expectNoProviderCall(() => call(callbackUrl(), { body: { code: back.query.code, state: back.query.state } }));
    expect(r.status).toBe(400);
    expect(r.body.type).toMatch(/invalid_state$/);
  });
});

describe('ID tokens that are refused (401 invalid_id_token, nobody signed in)', () => {
  const now = () => Math.floor(Date.now() / 1000);
  const cases: [string, FakeGoogle['tamper']][] = [
    ['another nonce', (claims) => ({ claims: { ...claims, nonce: 'a-nonce-of-another-sign-in' } })],
    ['another audience', (claims) => ({ claims: { ...claims, aud: 'another-client' } })],
    ['another issuer', (claims) => ({ claims: { ...claims, iss: 'https://accounts.evil.example' } })],
    ['expired', (claims) => ({ claims: { ...claims, iat: now() - 7200, exp: now() - 3600 } })],
    ['another authorized party (azp)', (claims) => ({ claims: { ...claims, azp: 'another-client' } })],
    ['alg HS256 (signed with the client secret)', (claims) => ({ claims, alg: 'HS256' })],
    ['alg none', (claims) => ({ claims, alg: 'none' })],
  ];
  test.each(cases)('%s', async (_name, tamper) => {
    const account = google.addAccount({});
    google.tamper = tamper;
    const r = await signInWithGoogle(t, google, account.sub);
    expect(r.status).toBe(401);
    expect(r.body.type).toMatch(/invalid_id_token$/);
    expect(await t.context.db('users').where({ email: account.email }).first()).toBeUndefined();
  });

  test('an untampered token re-signed by the same key passes (the cases above fail for their one change)', async () => {
    const account = google.addAccount({});
    google.tamper = (claims) => ({ claims });
    expect((await signInWithGoogle(t, google, account.sub)).status).toBe(200);
  });
});

test('an email Google has not verified is refused', async () => {
  const account = google.addAccount({ email_verified: false });
  const r = await signInWithGoogle(t, google, account.sub);
  expect(r.status).toBe(401);
  expect(r.body.type).toMatch(/google_email_unverified$/);
  expect(await t.context.db('users').where({ email: account.email }).first()).toBeUndefined();
});

describe('linking by email', () => {
  test('a password account with a verified email is linked (identity.linked); the password still works', async () => {
    const owner = await createUser(t.context.db, { email: `linked-${Date.now()}@example.com` });
    const account = google.addAccount({ email: owner.email.toUpperCase() });
    const r = await signInWithGoogle(t, google, account.sub);
    expect(r.status).toBe(200);
    expect(r.body.user.id).toBe(owner.id);
    expect(await t.context.db('auth_providers').where({ user_id: owner.id }).first()).toMatchObject({
      provider: 'google',
      provider_user_id: account.sub,
    });
    const linked = await eventually(async () =>
      (await streamEvents(t.context.redis, t.config.events.streamName)).find(
        (e) => e.type === 'identity.linked' && e.payload.user_id === owner.id,
      ),
    );
    expect(linked.payload.data).toEqual({ provider: 'google' });
    expect((await login(t.url, owner)).accessToken).toBeTruthy();
  });

  test('a password account whose email is not verified: 409, nothing linked', async () => {
    const owner = await createUser(t.context.db, { status: 'pending_verification' });
    await t.context.db('users').where({ id: owner.id }).update({ email_verified: false });
    const account = google.addAccount({ email: owner.email });
    const r = await signInWithGoogle(t, google, account.sub);
    expect(r.status).toBe(409);
    expect(r.body.type).toMatch(/account_email_unverified$/);
    expect(r.body.detail).toMatch(/sign in with your password and verify your email first/i);
    expect(await t.context.db('auth_providers').where({ user_id: owner.id }).first()).toBeUndefined();
  });

  test('an account already linked to another Google account: 409', async () => {
    const account = google.addAccount({});
    const first = await signInWithGoogle(t, google, account.sub);
    const other = google.addAccount({ email: account.email });
    const r = await signInWithGoogle(t, google, other.sub);
    expect(r.status).toBe(409);
    expect(r.body.type).toMatch(/other_google_account_linked$/);
    expect(await t.context.db('auth_providers').where({ user_id: first.body.user.id }).pluck('provider_user_id')).toEqual([account.sub]);
  });
});

describe('suspended and deleted users get the login’s one 401 answer', () => {
  async function loginAnswer(): Promise<Reply> {
    return call(`${t.url}/v1/auth/login`, { body: { email: 'nobody@example.com', password: 'Wrong-password-123' } });
  }

  test('a linked user who is suspended', async () => {
    const account = google.addAccount({});
    const first = await signInWithGoogle(t, google, account.sub);
    await t.context.db('users').where({ id: first.body.user.id }).update({ status: 'suspended' });
    const r = await signInWithGoogle(t, google, account.sub);
    const expected = await loginAnswer();
    expect(r.status).toBe(401);
    expect({ type: r.body.type, detail: r.body.detail }).toEqual({ type: expected.body.type, detail: expected.body.detail });
  });

  test('a suspended password account with the same email is neither linked nor signed in', async () => {
    const owner = await createUser(t.context.db, { status: 'suspended' });
    const account = google.addAccount({ email: owner.email });
    const r = await signInWithGoogle(t, google, account.sub);
    expect(r.status).toBe(401);
    expect(r.body.detail).toBe((await loginAnswer()).body.detail);
    expect(await t.context.db('auth_providers').where({ user_id: owner.id }).first()).toBeUndefined();
  });
});

describe('the provider down: 503', () => {
  test('at the code exchange', async () => {
    const account = google.addAccount({});
    const started = await startSignIn(t);
    const back = await google.authorize(started.body.authorization_url, account.sub);
    google.down = true;
    const r = await call(callbackUrl(), { body: { code: back.query.code, state: back.query.state } });
    expect(r.status).toBe(503);
    expect(r.headers.get('retry-after')).toBeTruthy();
  });

  test('at discovery, for an app that has not read the discovery document yet', async () => {
    const gone = await startFakeGoogle();
    const other = await startTestApp(googleEnvironment(gone));
    try {
      await gone.close();
      const r = await startSignIn(other);
      expect(r.status).toBe(503);
    } finally {
      await other.close();
    }
  });
});

test('no code, state, verifier, nonce, client secret or token reaches the log or an event', async () => {
  const secrets: string[] = [google.clientSecret];
  const pendingOf = async (state: string) => {
    const stored = await t.context.redis.get(t.context.key('oauth-state', hashOpaqueToken(state)));
    const pending = JSON.parse(stored!) as { verifier: string; nonce: string };
    secrets.push(state, pending.verifier, pending.nonce);
  };
  const account = google.addAccount({});
  for (const method of ['POST', 'GET', 'down', 'tampered'] as const) {
    const started = await startSignIn(t);
    await pendingOf(started.body.state);
    secrets.push(bindingCookie(started).Cookie.split('=')[1]);
    const back = await google.authorize(started.body.authorization_url, account.sub);
    secrets.push(back.query.code);
    google.down = method === 'down';
    if (method === 'tampered') google.tamper = (claims) => ({ claims: { ...claims, nonce: 'another' } });
    const r =
      method === 'GET'
        ? await call(`${callbackUrl()}${back.callbackUrl.search}`, { headers: bindingCookie(started) })
        : await call(callbackUrl(), { body: { code: back.query.code, state: back.query.state } });
    expect(r.status).toBe({ POST: 200, GET: 200, down: 503, tampered: 401 }[method]);
    if (r.status === 200) secrets.push(r.body.access_token, r.body.refresh_token);
    google.down = false;
    google.tamper = null;
  }
  secrets.push(...google.issuedTokens);
  // The 503 was logged (with its cause), and the sign-ins were: the log is not empty by accident.
  expect(t.logs.text).toContain('request failed');
  await eventually(async () => (await t.context.db('events').whereNull('published_at').count({ n: '*' }))[0].n === 0);
  const events = JSON.stringify(await t.context.db('events').select('data'));
  const stream = JSON.stringify(await streamEvents(t.context.redis, t.config.events.streamName));
  for (const secret of secrets) {
    expect(secret.length).toBeGreaterThan(15);
    expect([secret, t.logs.text.includes(secret), events.includes(secret), stream.includes(secret)]).toEqual([secret, false, false, false]);
  }
});
