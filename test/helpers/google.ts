// Signing in with Google through the real endpoints, against the local provider of
// ./oidc-provider.ts.
import { call, type Reply, type TestApp } from './app';
import type { FakeGoogle } from './oidc-provider';

/** The variables that point an app at the local provider (generous limits: tests share 127.0.0.1). */
export function googleEnvironment(google: FakeGoogle, extra: Record<string, string> = {}): Record<string, string> {
  return {
    GOOGLE_OAUTH_ISSUER: google.issuer,
    GOOGLE_OAUTH_CLIENT_ID: google.clientId,
    GOOGLE_OAUTH_CLIENT_SECRET: google.clientSecret,
    GOOGLE_OAUTH_REDIRECT_URI: google.redirectUri,
    GOOGLE_OAUTH_TIMEOUT_SECONDS: '2',
    RATELIMIT_OAUTH_ATTEMPTS: '1000',
    ...extra,
  };
}

export function startSignIn(t: TestApp, body: Record<string, unknown> = {}): Promise<Reply> {
  return call(`${t.url}/v1/auth/oauth/google`, { body });
}

/** The browser-binding cookie a start set, as a Cookie header: what the browser sends to the callback. */
export function bindingCookie(started: Reply): { Cookie: string } {
  const cookie = started.headers.getSetCookie().find((c) => c.startsWith('google_oauth_binding='));
  if (!cookie) throw new Error('the start set no binding cookie');
  return { Cookie: cookie.split(';')[0] };
}

/**
 * The whole flow for `sub`: start, sign in at the provider, and bring the code and state back by
 * POST (JSON) or by GET (as the browser does, with every parameter the provider added).
 */
export async function signInWithGoogle(
  t: TestApp,
  google: FakeGoogle,
  sub: string,
  options: { method?: 'POST' | 'GET'; start?: Record<string, unknown> } = {},
): Promise<Reply> {
  const started = await startSignIn(t, options.start);
  if (started.status !== 200) throw new Error(`start failed: ${started.status} ${started.text}`);
  const back = await google.authorize(started.body.authorization_url, sub);
  const url = `${t.url}/v1/auth/oauth/google/callback`;
  if (options.method === 'GET') return call(`${url}${back.callbackUrl.search}`, { headers: bindingCookie(started) });
  return call(url, { body: { code: back.query.code, state: back.query.state } });
}
