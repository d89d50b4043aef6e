// HTTP endpoints of authentication: register, verify email, sign in, refresh, sign out, sessions.
import Router from '@koa/router';
import type { Context as KoaContext } from 'koa';
import type { Context } from '../../shared/context';
import { ForbiddenError, NotFoundError, UnauthorizedError } from '../../shared/errors';
import type { RouteRegistry } from '../http/route';
import { eventOrigin, type AppState } from '../http/state';
import { createLimiter } from '../http/rate-limit';
import { clientCountry } from '../http/request-context';
import { requireUser } from './authenticate';
import * as schemas from './schemas';
import { issueServiceToken, login, loginLimiters, register, resendVerification, verifyEmail } from './service';
import { deviceFingerprintOf, listSessions, refreshSession, revokeSessions, type ClientInfo, type TokenPair } from './sessions';
import { recordEvent } from '../../shared/events/outbox';

const ACCEPTED = { status: 'accepted' as const, message: 'If an account needs it, an email is on its way.' };

function clientOf(app: Context, ctx: KoaContext & { state: AppState }, fingerprint?: string): ClientInfo {
  const { ip, userAgent } = ctx.state.origin;
  return { ip, userAgent, country: clientCountry(ctx, app.config), deviceFingerprint: deviceFingerprintOf(fingerprint, userAgent) };
}

const COOKIE_PATH = '/v1/auth';

/** Sets (or, with an empty value, clears) the refresh cookie; without `expires` it ends with the browser. */
function setRefreshCookie(app: Context, ctx: KoaContext, value: string, expires?: Date): void {
  const { name, secure, httpOnly, sameSite } = app.config.cookie;
  // Koa refuses Secure cookies on what it sees as plain HTTP (TLS usually ends at a proxy).
  ctx.cookies.secure = ctx.cookies.secure || secure;
  ctx.cookies.set(name, value, { path: COOKIE_PATH, secure, httpOnly, sameSite, overwrite: true, ...(expires && { expires }) });
}

/** The refresh cookie rides along with every token response; only persistent sessions outlive the browser. */
export function sendTokenPair(app: Context, ctx: KoaContext, pair: TokenPair): void {
  setRefreshCookie(app, ctx, pair.refresh_token, pair.persistent ? new Date(pair.refresh_expires_at) : undefined);
  const { persistent: _persistent, refresh_expires_at: _expires, ...body } = pair;
  ctx.body = body;
}

export function authRoutes(app: Context, registry: RouteRegistry): Router<AppState> {
  const router = new Router<AppState>();
  const { rateLimits } = app.config;
  const limiter = (name: string, points: number, windowSeconds: number) =>
    createLimiter(app.redis, app.key('rl', name), points, windowSeconds);
  const registerLimit = limiter('register-ip', rateLimits.register.attempts, rateLimits.register.windowSeconds);
  const loginLimits = loginLimiters(app);
  const refreshLimit = limiter('refresh-session', rateLimits.refresh.attempts, rateLimits.refresh.windowSeconds);
  const emailLimit = limiter('email-address', rateLimits.email.attempts, rateLimits.email.windowSeconds);
  const emailIpLimit = limiter('email-ip', rateLimits.email.ipAttempts, rateLimits.email.windowSeconds);
  const serviceTokenLimit = limiter('service-token-ip', rateLimits.login.ipAttempts, rateLimits.login.windowSeconds);
  const authenticated = requireUser(app);
  const trustedOrigins = new Set([...app.config.cors.allowedOrigins, new URL(app.config.publicBaseUrl).origin]);

  registry.add(router, {
    method: 'post',
    path: '/v1/auth/register',
    summary: 'Create an account (a verification email is sent)',
    tags: ['auth'],
    security: 'none',
    body: schemas.RegisterBody,
    responses: {
      201: { description: 'Created, waiting for email verification', schema: schemas.Registered },
      409: { description: 'The email is taken' },
      429: { description: 'Too many registrations from this IP' },
    },
    before: [
      async (ctx, next) => {
        await registerLimit.hit(ctx.state.origin.ip ?? '-');
        await next();
      },
    ],
    async handler(ctx, { body }) {
      ctx.status = 201;
      ctx.body = await register(app, body, clientOf(app, ctx));
    },
  });

  registry.add(router, {
    method: 'post',
    path: '/v1/auth/verify-email',
    summary: 'Confirm an email address with the emailed token',
    tags: ['auth'],
    security: 'none',
    body: schemas.VerifyEmailBody,
    responses: { 200: { description: 'Verified; the account is active' } },
    async handler(ctx, { body }) {
      ctx.body = await verifyEmail(app, body.token, clientOf(app, ctx));
    },
  });

  registry.add(router, {
    method: 'post',
    path: '/v1/auth/verify-email/resend',
    summary: 'Send the verification email again (same answer whether or not the email exists)',
    tags: ['auth'],
    security: 'none',
    body: schemas.ResendBody,
    responses: { 202: { description: 'Accepted', schema: schemas.Accepted }, 429: { description: 'Too many emails requested' } },
    before: [
      async (ctx, next) => {
        await emailIpLimit.hit(ctx.state.origin.ip ?? '-');
        await emailLimit.hit((ctx.state.input as { body: { email: string } }).body.email.trim().toLowerCase());
        await next();
      },
    ],
    async handler(ctx, { body }) {
      await resendVerification(app, body.email);
      ctx.status = 202;
      ctx.body = ACCEPTED;
    },
  });

  registry.add(router, {
    method: 'post',
    path: '/v1/auth/login',
    summary: 'Sign in with email and password',
    tags: ['auth'],
    security: 'none',
    body: schemas.LoginBody,
    responses: {
      200: { description: 'A token pair, or an MFA challenge when the account has MFA', schema: schemas.TokenPair },
      401: { description: 'Wrong email or password (one answer for every cause)' },
      429: { description: 'Too many failed attempts' },
    },
    async handler(ctx, { body }) {
      const result = await login(app, body, clientOf(app, ctx, body.device_fingerprint), loginLimits);
      if ('mfa_required' in result) ctx.body = result;
      else sendTokenPair(app, ctx, result);
    },
  });

  registry.add(router, {
    method: 'post',
    path: '/v1/auth/refresh',
    summary: 'Exchange a refresh token (body or cookie) for a new pair',
    tags: ['auth'],
    security: 'none',
    body: schemas.RefreshBody,
    responses: {
      200: { description: 'A rotated token pair', schema: schemas.TokenPair },
      401: { description: 'Invalid, expired, revoked or reused token' },
      429: { description: 'Too many refreshes for this session' },
    },
    async handler(ctx, { body }) {
      const fromCookie = !body.refresh_token;
      const token = body.refresh_token ?? ctx.cookies.get(app.config.cookie.name);
      if (!token) throw new UnauthorizedError('A refresh token is required, in the body or the cookie.', 'invalid_refresh_token');
      // The cookie rides along on any request the browser sends: beyond SameSite, a browser
      // request from a page of another origin is refused.
      const origin = ctx.get('Origin');
      if (fromCookie && origin && !trustedOrigins.has(origin))
        throw new ForbiddenError('Refreshing with the cookie is allowed from the configured origins only.', 'origin_not_allowed');
      sendTokenPair(app, ctx, await refreshSession(app, token, clientOf(app, ctx), refreshLimit));
    },
  });

  registry.add(router, {
    method: 'post',
    path: '/v1/auth/logout',
    summary: 'Sign out this session, or every session',
    tags: ['auth'],
    security: 'bearer',
    guard: authenticated,
    body: schemas.LogoutBody,
    responses: { 204: { description: 'Signed out' } },
    async handler(ctx, { body }) {
      const principal = ctx.state.principal!;
      const allDevices = body.all_devices === true;
      const origin = eventOrigin(ctx.state);
      await app.db.transaction(async (trx) => {
        await revokeSessions(app, trx, {
          userId: principal.userId,
          ...(!allDevices && { sessionIds: principal.sessionId ? [principal.sessionId] : [] }),
          reason: allDevices ? 'logout_all' : 'logout',
          origin,
        });
        await recordEvent(
          trx,
          { type: 'user.logout', userId: principal.userId, data: { session_id: principal.sessionId, all_devices: allDevices } },
          origin,
        );
      });
      setRefreshCookie(app, ctx, '', new Date(0));
      ctx.status = 204;
    },
  });

  registry.add(router, {
    method: 'get',
    path: '/v1/auth/sessions',
    summary: 'My live sessions, the current one marked',
    tags: ['auth'],
    security: 'bearer',
    guard: authenticated,
    responses: { 200: { description: 'Sessions, newest first', schema: schemas.Sessions } },
    async handler(ctx) {
      const principal = ctx.state.principal!;
      ctx.body = { sessions: await listSessions(app, principal.userId, principal.sessionId) };
    },
  });

  registry.add(router, {
    method: 'delete',
    path: '/v1/auth/sessions/:session_id',
    summary: 'Revoke one of my sessions',
    tags: ['auth'],
    security: 'bearer',
    guard: authenticated,
    params: schemas.SessionParams,
    responses: { 204: { description: 'Revoked' }, 404: { description: 'No such live session of mine' } },
    async handler(ctx, { params }) {
      const principal = ctx.state.principal!;
      const revoked = await app.db.transaction((trx) =>
        revokeSessions(app, trx, {
          userId: principal.userId,
          sessionIds: [params.session_id],
          reason: 'revoked_by_user',
          origin: eventOrigin(ctx.state),
        }),
      );
      if (!revoked.length) throw new NotFoundError('No such session.');
      ctx.status = 204;
    },
  });

  registry.add(router, {
    method: 'post',
    path: '/v1/auth/service-token',
    summary: 'A 15-minute access token for a service principal (client credentials)',
    tags: ['auth'],
    security: 'none',
    body: schemas.ServiceTokenBody,
    responses: {
      200: { description: 'An access token (no refresh token, no session)', schema: schemas.ServiceToken },
      401: { description: 'Invalid client credentials' },
    },
    async handler(ctx, { body }) {
      ctx.body = await issueServiceToken(app, body.client_id, body.client_secret, ctx.state.origin.ip, serviceTokenLimit);
    },
  });

  return router;
}
