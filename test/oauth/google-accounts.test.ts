// Google sign-in as the browser does it, with OAUTH_SUCCESS_REDIRECT_URL and
// OAUTH_FAILURE_REDIRECT_URL set (DESIGN.md, "OAuth browser callback"); and what a Google user can
// do with their account: the MFA challenge, unlinking, turning MFA off and deleting the account
// without a password (DESIGN.md, "Step-up").
import fs from 'node:fs';
import path from 'node:path';
import { decodeJwt } from 'jose';
import { simpleParser } from 'mailparser';
import { call, eventually, startTestApp, type Reply, type TestApp } from '../helpers/app';
import { startFakeGoogle, type FakeGoogle } from '../helpers/oidc-provider';
import { bindingCookie, googleEnvironment, signInWithGoogle, startSignIn } from '../helpers/google';
import { enableMfa, login, streamEvents, type SignedIn } from '../helpers/auth';
import { createUser } from '../helpers/users';

// Some tests use three TOTP codes of one authenticator, which may wait for the next time step.
jest.setTimeout(90_000);

const SUCCESS = 'https://app.example.test/signed-in?from=google';
const FAILURE = 'https://app.example.test/sign-in-failed';

let google: FakeGoogle;
let t: TestApp;
beforeAll(async () => {
  google = await startFakeGoogle();
  t = await startTestApp(googleEnvironment(google, { OAUTH_SUCCESS_REDIRECT_URL: SUCCESS, OAUTH_FAILURE_REDIRECT_URL: FAILURE }));
  await t.startWorkers();
});
afterAll(async () => {
  await t.close();
  await google.close();
});
afterEach(() => {
  google.down = false;
});

const callbackUrl = () => `${t.url}/v1/auth/oauth/google/callback`;
const cookieName = () => t.config.cookie.name;

/** A Google user signed in by POST, as the helpers of ../helpers/auth.ts describe a signed-in user. */
async function googleUser(): Promise<SignedIn & { sub: string }> {
  const account = google.addAccount({});
  const r = await signInWithGoogle(t, google, account.sub);
  if (r.status !== 200) throw new Error(`google sign-in failed: ${r.status} ${r.text}`);
  return {
    id: r.body.user.id,
    email: account.email,
    password: '',
    sub: account.sub,
    accessToken: r.body.access_token,
    refreshToken: r.body.refresh_token,
    sessionId: r.body.session_id,
    auth: { Authorization: `Bearer ${r.body.access_token}` },
  };
}

/** Makes the session's sign-in `minutes` old, and returns an access token that says so. */
async function ageSignIn(user: SignedIn, minutes: number): Promise<{ Authorization: string }> {
  await t.context
    .db('sessions')
    .where({ id: user.sessionId })
    .update({ auth_time: t.context.db.raw(`now() - interval '${minutes} minutes'`) });
  const r = await call(`${t.url}/v1/auth/refresh`, { body: { refresh_token: user.refreshToken } });
  if (r.status !== 200) throw new Error(`refresh failed: ${r.status} ${r.text}`);
  user.refreshToken = r.body.refresh_token;
  return { Authorization: `Bearer ${r.body.access_token}` };
}

describe('the browser callback with redirect URLs', () => {
  test('success: 302 to the web app with no token in the URL; the refresh cookie then gives the token pair', async () => {
    const account = google.addAccount({});
    const r = await signInWithGoogle(t, google, account.sub, { method: 'GET' });
    expect(r.status).toBe(302);
    expect(r.headers.get('location')).toBe(SUCCESS);
    const cookie = r.headers.getSetCookie().find((c) => c.startsWith(`${cookieName()}=`))!;
    expect(cookie).toMatch(/httponly/i);
    expect(cookie).toMatch(/samesite=strict/i);
    const refreshed = await call(`${t.url}/v1/auth/refresh`, {
      body: {},
      headers: { Cookie: cookie.split(';')[0], Origin: 'http://localhost:3000' },
    });
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.user.email).toBe(account.email);
    expect(decodeJwt(refreshed.body.access_token).amr).toEqual(['google']);
  });

  test('an MFA user: 302 with the challenge in the fragment, never the query; the code finishes it (amr google, mfa)', async () => {
    const user = await googleUser();
    const authenticator = await enableMfa(t.url, user);
    const r = await signInWithGoogle(t, google, user.sub, { method: 'GET' });
    expect(r.status).toBe(302);
    const location = new URL(r.headers.get('location')!);
    expect(`${location.origin}${location.pathname}${location.search}`).toBe(SUCCESS);
    const fragment = new URLSearchParams(location.hash.slice(1));
    expect(fragment.get('mfa_token')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(fragment.get('expires_in')).toBe('300');
    expect(location.search).not.toContain('mfa_token');
    expect(r.headers.getSetCookie().some((c) => c.startsWith(`${cookieName()}=`))).toBe(false);
    const verified = await call(`${t.url}/v1/auth/mfa/verify`, {
      body: { mfa_token: fragment.get('mfa_token'), code: await authenticator.code() },
    });
    expect(verified.status).toBe(200);
    expect(verified.body.user.id).toBe(user.id);
    expect(decodeJwt(verified.body.access_token).amr).toEqual(['google', 'mfa']);
  });

  test('failures: 302 to the failure URL with the error code', async () => {
    const expectFailure = (r: Reply, code: string) => {
      expect(r.status).toBe(302);
      const location = new URL(r.headers.get('location')!);
      expect(`${location.origin}${location.pathname}`).toBe(FAILURE);
      expect(Object.fromEntries(location.searchParams)).toEqual({ error: code });
    };
    expectFailure(await call(`${callbackUrl()}?code=x&state=unknown-state`), 'invalid_state');

    const started = await startSignIn(t);
    const denied = await call(`${callbackUrl()}?error=access_denied&state=${started.body.state}`, { headers: bindingCookie(started) });
    expectFailure(denied, 'access_denied');

    const account = google.addAccount({ email_verified: false });
    expectFailure(await signInWithGoogle(t, google, account.sub, { method: 'GET' }), 'google_email_unverified');

    const next = await startSignIn(t);
    const back = await google.authorize(next.body.authorization_url, google.addAccount({}).sub);
    google.down = true;
    expectFailure(await call(`${callbackUrl()}${back.callbackUrl.search}`, { headers: bindingCookie(next) }), 'service_unavailable');
  });

  test('the POST callback answers JSON whatever the redirect URLs', async () => {
    const account = google.addAccount({});
    const r = await signInWithGoogle(t, google, account.sub);
    expect(r.status).toBe(200);
    expect(r.body.user.email).toBe(account.email);
  });

  test('a code the provider refuses: 400 invalid_grant', async () => {
    const started = await startSignIn(t);
    const r = await call(callbackUrl(), { body: { code: 'unused', state: started.body.state } });
    // The state was good, the code is not: the provider refuses it.
    expect(r.status).toBe(400);
    expect(r.body.type).toMatch(/invalid_grant$/);
  });
});

describe('an MFA user signing in by POST', () => {
  test('gets the challenge, and the code gives the token pair; user.login says google', async () => {
    const user = await googleUser();
    const authenticator = await enableMfa(t.url, user);
    const challenge = await signInWithGoogle(t, google, user.sub);
    expect(challenge.status).toBe(200);
    expect(challenge.body).toEqual({ mfa_required: true, mfa_token: expect.any(String), expires_in: 300 });
    const verified = await call(`${t.url}/v1/auth/mfa/verify`, {
      body: { mfa_token: challenge.body.mfa_token, code: await authenticator.code() },
    });
    expect(verified.status).toBe(200);
    expect(decodeJwt(verified.body.access_token).amr).toEqual(['google', 'mfa']);
    const event = await eventually(async () =>
      (await streamEvents(t.context.redis, t.config.events.streamName)).find(
        (e) => e.type === 'user.login' && e.payload.data.session_id === verified.body.session_id,
      ),
    );
    expect(event.payload.data.method).toBe('google');
  });
});

describe('unlinking Google', () => {
  const unlink = (headers: Record<string, string>) => call(`${t.url}/v1/users/me/identities/google`, { method: 'DELETE', headers });

  test('a Google-only user cannot: 409, it would lock them out', async () => {
    const user = await googleUser();
    const r = await unlink(user.auth);
    expect(r.status).toBe(409);
    expect(r.body.type).toMatch(/last_sign_in_method$/);
    expect(r.body.detail).toMatch(/password reset/);
    expect(await t.context.db('auth_providers').where({ user_id: user.id }).first()).toBeTruthy();
  });

  test('a user with a password can (identity.unlinked); then /users/me lists nothing, and a second unlink is 404', async () => {
    const owner = await createUser(t.context.db);
    const account = google.addAccount({ email: owner.email });
    expect((await signInWithGoogle(t, google, account.sub)).status).toBe(200);
    const me = await login(t.url, owner);
    expect((await call(`${t.url}/v1/users/me`, { headers: me.auth })).body.identities).toHaveLength(1);
    expect((await unlink(me.auth)).status).toBe(204);
    expect((await call(`${t.url}/v1/users/me`, { headers: me.auth })).body.identities).toEqual([]);
    expect((await unlink(me.auth)).status).toBe(404);
    const event = await eventually(async () =>
      (await streamEvents(t.context.redis, t.config.events.streamName)).find(
        (e) => e.type === 'identity.unlinked' && e.payload.user_id === owner.id,
      ),
    );
    expect(event.payload.data).toEqual({ provider: 'google' });
  });

  test('with MFA on, only with a step-up token', async () => {
    const owner = await createUser(t.context.db);
    const account = google.addAccount({ email: owner.email });
    expect((await signInWithGoogle(t, google, account.sub)).status).toBe(200);
    const me = await login(t.url, owner);
    const authenticator = await enableMfa(t.url, me);
    const refused = await unlink(me.auth);
    expect(refused.status).toBe(403);
    expect(refused.body.type).toMatch(/verification_required$/);
    const step = await call(`${t.url}/v1/mfa/totp/verify`, { body: { code: await authenticator.code() }, headers: me.auth });
    expect(step.status).toBe(200);
    expect((await unlink({ ...me.auth, 'X-Verification-Token': step.body.verification_token })).status).toBe(204);
  });
});

describe('a Google-only user (no password)', () => {
  test('deletes the account with a fresh sign-in; the same Google account then registers anew', async () => {
    const user = await googleUser();
    const r = await call(`${t.url}/v1/users/me`, { method: 'DELETE', body: {}, headers: user.auth });
    expect(r.status).toBe(204);
    expect(await t.context.db('users').where({ id: user.id }).first('status')).toEqual({ status: 'deleted' });
    expect(await t.context.db('auth_providers').where({ user_id: user.id }).first()).toBeUndefined();
    const again = await signInWithGoogle(t, google, user.sub);
    expect(again.status).toBe(200);
    expect(again.body.user.id).not.toBe(user.id);
  });

  test('with a sign-in older than 5 minutes, deletion needs a verification token', async () => {
    const user = await googleUser();
    const authenticator = await enableMfa(t.url, user);
    const stale = await ageSignIn(user, 6);
    const refused = await call(`${t.url}/v1/users/me`, { method: 'DELETE', body: {}, headers: stale });
    expect(refused.status).toBe(403);
    expect(refused.body.type).toMatch(/reauthentication_required$/);
    const step = await call(`${t.url}/v1/mfa/totp/verify`, { body: { code: await authenticator.code() }, headers: stale });
    const r = await call(`${t.url}/v1/users/me`, {
      method: 'DELETE',
      body: {},
      headers: { ...stale, 'X-Verification-Token': step.body.verification_token },
    });
    expect(r.status).toBe(204);
  });

  test('turns MFA off with the code and a fresh sign-in, or, later, a verification token', async () => {
    const fresh = await googleUser();
    const freshApp = await enableMfa(t.url, fresh);
    const off = await call(`${t.url}/v1/mfa/totp/disable`, { body: { code: await freshApp.code() }, headers: fresh.auth });
    expect(off.status).toBe(204);

    const later = await googleUser();
    const laterApp = await enableMfa(t.url, later);
    const stale = await ageSignIn(later, 6);
    const refused = await call(`${t.url}/v1/mfa/totp/disable`, { body: { code: await laterApp.code() }, headers: stale });
    expect(refused.status).toBe(403);
    expect(refused.body.type).toMatch(/reauthentication_required$/);
    expect(await t.context.db('users').where({ id: later.id }).first('mfa_enabled')).toEqual({ mfa_enabled: true });
    const step = await call(`${t.url}/v1/mfa/totp/verify`, { body: { code: await laterApp.code() }, headers: stale });
    expect(step.status).toBe(200);
    const r = await call(`${t.url}/v1/mfa/totp/disable`, {
      body: { code: await laterApp.code() },
      headers: { ...stale, 'X-Verification-Token': step.body.verification_token },
    });
    expect(r.status).toBe(204);
  });

  test('sets a password with the reset flow, then signs in with it and may unlink Google', async () => {
    const user = await googleUser();
    expect((await call(`${t.url}/v1/auth/password/reset-request`, { body: { email: user.email } })).status).toBe(202);
    const message = await eventually<{ id: string }>(() =>
      t.context.db('email_messages').where({ user_id: user.id, template: 'password_reset', status: 'sent' }).first('id'),
    );
    const dir = t.config.smtp.devDir;
    const file = await eventually(() => fs.readdirSync(dir).find((name) => name.endsWith(`-${message.id}.eml`)));
    const parsed = await simpleParser(fs.readFileSync(path.join(dir, file)));
    const link = /https?:\/\/[^\s"<>]+reset-password\?[^\s"<>]+/.exec(parsed.text ?? '')?.[0];
    const token = new URL(link!).searchParams.get('token')!;
    const password = 'A-fresh-Passphrase-9-of-mine';
    const reset = await call(`${t.url}/v1/auth/password/reset`, { body: { token, new_password: password } });
    expect([reset.status, reset.text]).toEqual([204, '']);
    const signedIn = await login(t.url, { id: user.id, email: user.email, password });
    expect((await call(`${t.url}/v1/users/me`, { headers: signedIn.auth })).body.has_password).toBe(true);
    const unlinked = await call(`${t.url}/v1/users/me/identities/google`, { method: 'DELETE', headers: signedIn.auth });
    expect(unlinked.status).toBe(204);
  });
});
