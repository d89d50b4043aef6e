// Answers of the sign-in flows, built field by field from what the services return: token pairs
// with their refresh cookie, MFA challenges, and session lists. Used by every route that signs in
// (password, MFA completion, refresh; Google later).
import type { Context as KoaContext } from 'koa';
import type { SetOption } from 'cookies';
import type { Context } from '../../shared/context';
import type { SignInResult } from '../../shared/auth/sign-in';
import type { LiveSessionRow, SessionTokens } from '../../shared/auth/sessions';
import type { MfaChallengeBody, SessionsBody, TokenPairBody } from './schemas';

/** The refresh cookie is sent to the auth endpoints only. */
const COOKIE_PATH = '/v1/auth';

/** Sets a cookie, Secure as configured (SESSION_COOKIE_SECURE). */
export function setCookie(app: Context, ctx: KoaContext, name: string, value: string, options: Omit<SetOption, 'secure'>): void {
  const { secure } = app.config.cookie;
  // Koa refuses Secure cookies on what it sees as plain HTTP (TLS usually ends at a proxy).
  ctx.cookies.secure = ctx.cookies.secure || secure;
  ctx.cookies.set(name, value, { secure, overwrite: true, ...options });
}

/** Sets (or, with an empty value, clears) the refresh cookie; without `expires` it ends with the browser. */
function setRefreshCookie(app: Context, ctx: KoaContext, value: string, expires?: Date): void {
  const { name, httpOnly, sameSite } = app.config.cookie;
  setCookie(app, ctx, name, value, { path: COOKIE_PATH, httpOnly, sameSite, ...(expires && { expires }) });
}

export function clearRefreshCookie(app: Context, ctx: KoaContext): void {
  setRefreshCookie(app, ctx, '', new Date(0));
}

export function tokenPairBody(tokens: SessionTokens): TokenPairBody {
  const { user } = tokens;
  return {
    access_token: tokens.accessToken,
    refresh_token: tokens.refreshToken,
    token_type: 'Bearer',
    expires_in: tokens.expiresIn,
    session_id: tokens.session.id,
    user: {
      id: user.id,
      email: user.email,
      name: user.name,
      email_verified: user.email_verified,
      status: user.status,
      mfa_enabled: user.mfa_enabled,
      roles: tokens.roles,
    },
  };
}

/** The session's refresh token in the cookie; only persistent sessions outlive the browser. */
export function setSessionCookie(app: Context, ctx: KoaContext, tokens: SessionTokens): void {
  setRefreshCookie(app, ctx, tokens.refreshToken, tokens.session.persistent ? new Date(tokens.session.expiresAt) : undefined);
}

/** A token pair in the body, and its refresh token in the cookie. */
export function sendTokens(app: Context, ctx: KoaContext, tokens: SessionTokens): void {
  setSessionCookie(app, ctx, tokens);
  ctx.body = tokenPairBody(tokens);
}

/** The answer of a sign-in: tokens, or the MFA challenge that stands before them. */
export function sendSignIn(app: Context, ctx: KoaContext, result: SignInResult): void {
  if (result.kind === 'session') return sendTokens(app, ctx, result.tokens);
  const body: MfaChallengeBody = { mfa_required: true, mfa_token: result.mfaToken, expires_in: result.expiresIn };
  ctx.body = body;
}

export function sessionsBody(sessions: LiveSessionRow[], currentSessionId: string | null): SessionsBody {
  return {
    sessions: sessions.map((s) => ({
      id: s.id,
      device_fingerprint: s.device_fingerprint,
      user_agent: s.user_agent,
      ip: s.ip,
      country: s.country,
      persistent: s.persistent,
      created_at: s.created_at.toISOString(),
      last_active_at: s.last_active_at.toISOString(),
      expires_at: s.ends_at.toISOString(),
      current: s.id === currentSessionId,
    })),
  };
}
