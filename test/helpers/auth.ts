// Signing in through the real endpoints, for tests of features behind authentication.
import { call } from './app';
import { createUser, type TestUser } from './users';
import type { Knex } from 'knex';

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
