// HTTP endpoints of authentication: register, verify email, sign in, refresh, sign out, sessions,
// service tokens.
import Router from '@koa/router';
import type { Context } from '../../shared/context';
import { ForbiddenError, UnauthorizedError } from '../../shared/errors';
import { register, verifyEmail } from '../../shared/auth/registration';
import { requestVerificationEmail } from '../../shared/auth/address-requests';
import { passwordSignIn } from '../../shared/auth/sign-in';
import { listSessions, refreshSession, revokeOwnSession, signOut } from '../../shared/auth/sessions';
import { issueServiceToken } from '../../shared/users/services';
import type { RouteRegistry } from '../http/route';
import { actorOf, eventOrigin, type AppState } from '../http/state';
import { clientInfo } from '../http/request-context';
import { requirePerson } from './authenticate';
import { clearRefreshCookie, sendSignIn, sendTokens, sessionsBody } from './presenters';
import * as schemas from './schemas';

const ACCEPTED = { status: 'accepted' as const, message: 'If an account needs it, an email is on its way.' };

export function authRoutes(app: Context, registry: RouteRegistry): Router<AppState> {
  const router = new Router<AppState>();
  const person = requirePerson(app);
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
    async handler(ctx, { body }) {
      const { userId, email } = await register(app, body, ctx.state.origin);
      ctx.status = 201;
      ctx.body = { user_id: userId, email, status: 'pending_verification' };
    },
  });

  registry.add(router, {
    method: 'post',
    path: '/v1/auth/verify-email',
    summary: 'Confirm an email address with the emailed token',
    tags: ['auth'],
    security: 'none',
    body: schemas.VerifyEmailBody,
    responses: { 200: { description: 'Verified; the account is active', schema: schemas.Verified } },
    async handler(ctx, { body }) {
      await verifyEmail(app, body.token, eventOrigin(ctx.state));
      ctx.body = { status: 'active' };
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
    async handler(ctx, { body }) {
      await requestVerificationEmail(app, body.email, eventOrigin(ctx.state));
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
      200: { description: 'A token pair, or an MFA challenge when the account has MFA', schema: schemas.SignInResult },
      401: { description: 'Wrong email or password (one answer for every cause)' },
      429: { description: 'Too many failed attempts' },
    },
    async handler(ctx, { body }) {
      sendSignIn(app, ctx, await passwordSignIn(app, body, clientInfo(ctx, app.config, body.device_fingerprint)));
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
      403: { description: 'The cookie was sent from an origin that is not allowed' },
      429: { description: 'Too many refreshes for this session' },
    },
    async handler(ctx, { body }) {
      const fromCookie = !body.refresh_token;
      const token = body.refresh_token ?? ctx.cookies.get(app.config.cookie.name);
      if (!token) throw new UnauthorizedError('A refresh token is required, in the body or the cookie.', 'invalid_refresh_token');
      // The cookie rides along on any request the browser sends: beyond SameSite, a browser
      // request from a page of another origin is refused.
      const origin = ctx.get('Origin');
      if (fromCookie && origin && !trustedOrigins.has(origin)) {
        throw new ForbiddenError('Refreshing with the cookie is allowed from the configured origins only.', 'origin_not_allowed');
      }
      sendTokens(app, ctx, await refreshSession(app, token, clientInfo(ctx, app.config)));
    },
  });

  registry.add(router, {
    method: 'post',
    path: '/v1/auth/logout',
    summary: 'Sign out this session, or every session',
    tags: ['auth'],
    security: 'bearer',
    guard: person,
    body: schemas.LogoutBody,
    responses: { 204: { description: 'Signed out' } },
    async handler(ctx, { body }) {
      await signOut(app, actorOf(ctx.state), body.all_devices === true, eventOrigin(ctx.state));
      clearRefreshCookie(app, ctx);
      ctx.status = 204;
    },
  });

  registry.add(router, {
    method: 'get',
    path: '/v1/auth/sessions',
    summary: 'My live sessions, the current one marked',
    tags: ['auth'],
    security: 'bearer',
    guard: person,
    responses: { 200: { description: 'Sessions, newest first', schema: schemas.Sessions } },
    async handler(ctx) {
      const { userId, sessionId } = actorOf(ctx.state);
      ctx.body = sessionsBody(await listSessions(app, userId, sessionId), sessionId);
    },
  });

  registry.add(router, {
    method: 'delete',
    path: '/v1/auth/sessions/:session_id',
    summary: 'Revoke one of my sessions',
    tags: ['auth'],
    security: 'bearer',
    guard: person,
    params: schemas.SessionParams,
    responses: { 204: { description: 'Revoked' }, 404: { description: 'No such live session of mine' } },
    async handler(ctx, { params }) {
      await revokeOwnSession(app, actorOf(ctx.state), params.session_id, eventOrigin(ctx.state));
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
      429: { description: 'Too many attempts from this IP' },
    },
    async handler(ctx, { body }) {
      const token = await issueServiceToken(app, body.client_id, body.client_secret, ctx.state.origin.ip);
      ctx.body = { access_token: token.accessToken, token_type: 'Bearer', expires_in: token.expiresIn };
    },
  });

  return router;
}
