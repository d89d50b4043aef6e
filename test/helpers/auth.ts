// Signing in through the real endpoints, for tests of features behind authentication.
import { call } from './app';
import { createUser, type TestUser } from './users';
import type { Knex } from 'knex';
import { Authenticator } from '../mfa/rfc6238';

export interface SignedIn extends TestUser {
  accessToken: string;
  refreshToken: string;
  sessionId: string;
  auth: { Authorization: string };
}

export async function login(
  url: string,
  user: TestUser,
  extra: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): Promise<SignedIn> {
  const r = await call(`${url}/v1/auth/login`, { body: { email: user.email, password: user.password, ...extra }, headers });
  if (r.status !== 200) throw new Error(`login failed: ${r.status} ${r.text}`);
  return {
    ...user,
    accessToken: r.body.access_token,
    refreshToken: r.body.refresh_token,
    sessionId: r.body.session_id,
    auth: { Authorization: `Bearer ${r.body.access_token}` },
  };
}

export async function signedInUser(db: Knex, url: string, options: Parameters<typeof createUser>[1] = {}): Promise<SignedIn> {
  return login(url, await createUser(db, options));
}

/** Entries of the test's event stream, parsed. */
export async function streamEvents(
  redis: { xrange(key: string, start: string, end: string): Promise<[string, string[]][]> },
  stream: string,
) {
  const entries = await redis.xrange(stream, '-', '+');
  return entries.map(([, fields]) => {
    const map: Record<string, string> = {};
    for (let i = 0; i < fields.length; i += 2) map[fields[i]] = fields[i + 1];
    return { id: map.id, type: map.type, raw: map.payload, payload: JSON.parse(map.payload) };
  });
}

/**
 * Signs an operator in at /admin/login (the code, when the account has MFA, from `code`) and
 * returns the session cookie as a Cookie header value, or the failed answer.
 */
export async function operatorSignIn(
  url: string,
  user: TestUser,
  code?: () => Promise<string>,
): Promise<{ cookie: string | null; reply: Awaited<ReturnType<typeof call>> }> {
  let reply = await call(`${url}/admin/login`, { body: { email: user.email, password: user.password } });
  if (reply.status === 200 && reply.body.mfa_required && code) {
    reply = await call(`${url}/admin/login/verify`, { body: { mfa_token: reply.body.mfa_token, code: await code() } });
  }
  const setCookie = reply.headers.getSetCookie().find((c) => /operator_session=[^;]/.test(c));
  return { cookie: setCookie ? setCookie.split(';')[0] : null, reply };
}

/** Turns MFA on for a signed-in user through the API; returns their authenticator app. */
export async function enableMfa(url: string, user: SignedIn): Promise<Authenticator> {
  const setup = await call(`${url}/v1/mfa/totp/setup`, { body: {}, headers: user.auth });
  if (setup.status !== 200) throw new Error(`MFA set-up failed: ${setup.status} ${setup.text}`);
  const app = new Authenticator(setup.body.secret);
  const enabled = await call(`${url}/v1/mfa/totp/enable`, { body: { code: await app.code() }, headers: user.auth });
  if (enabled.status !== 200) throw new Error(`MFA enable failed: ${enabled.status} ${enabled.text}`);
  return app;
}
