// HTTP endpoints of Google sign-in: the start, the callback as JSON (POST, like login) and as the
// browser brings it back (GET; DESIGN.md, "OAuth browser callback"), and unlinking. With
// FEATURE_GOOGLE_OAUTH=false the sign-in endpoints are not registered (404, absent from the
// document); unlinking stays, so nobody is left with a link they cannot remove.
import Router from '@koa/router';
import type { Context as KoaContext } from 'koa';
import type { Context } from '../../shared/context';
import { AppError } from '../../shared/errors';
import type { SignInResult } from '../../shared/auth/sign-in';
import { completeGoogleSignIn, startGoogleSignIn } from '../../shared/oauth/google';
import { unlinkIdentity } from '../../shared/oauth/identities';
import type { RouteRegistry } from '../http/route';
import { actorOf, eventOrigin, type AppState } from '../http/state';
import { clientInfo } from '../http/request-context';
import { requirePerson } from '../auth/authenticate';
import { sendSignIn, setCookie, setSessionCookie } from '../auth/presenters';
import { SignInResult as SignInResultSchema } from '../auth/schemas';
import { VERIFICATION_HEADER } from '../mfa/step-up';
import * as schemas from './schemas';

const SIGN_IN_REFUSALS = {
  400: { description: 'Missing, unknown, expired or reused state (invalid_state); an error from the provider; a refused code' },
  401: { description: 'The ID token did not verify, Google has not verified the email, or the account is suspended or deleted' },
  409: { description: 'The email belongs to an account whose email is not verified: sign in with the password and verify it first' },
  429: { description: 'Too many sign-ins from this IP' },
};

/** The cookie that ties a sign-in to the browser that started it; sent back only to the browser callback. */
const BINDING_COOKIE = 'google_oauth_binding';
const CALLBACK_PATH = '/v1/auth/oauth/google/callback';

function setBindingCookie(app: Context, ctx: KoaContext, value: string | null): void {
  // Lax, not Strict: it must come along on the top-level redirect from Google back to us.
  setCookie(app, ctx, BINDING_COOKIE, value ?? '', {
    path: CALLBACK_PATH,
    httpOnly: true,
    sameSite: 'lax',
    ...(value ? { maxAge: 600_000 } : { expires: new Date(0) }),
  });
}

/** The browser's answer on success: the refresh cookie and the web app, or the MFA challenge in the fragment. */
function redirectSignedIn(app: Context, ctx: KoaContext, result: SignInResult, target: string): void {
  const url = new URL(target);
  if (result.kind === 'session') {
    // No token in the URL: the web app calls /v1/auth/refresh, which takes the cookie.
    setSessionCookie(app, ctx, result.tokens);
  } else {
    // In the fragment, never the query: a fragment is not sent to servers nor kept in their logs.
    url.hash = new URLSearchParams({ mfa_token: result.mfaToken, expires_in: String(result.expiresIn) }).toString();
  }
  ctx.redirect(url.toString());
}

function redirectFailed(ctx: KoaContext, error: AppError, target: string): void {
  const url = new URL(target);
  url.searchParams.set('error', error.code);
  ctx.redirect(url.toString());
}

export function oauthRoutes(app: Context, registry: RouteRegistry): Router<AppState> {
  const router = new Router<AppState>();
  const { successRedirectUrl, failureRedirectUrl } = app.config.google;

  if (app.config.features.googleOAuth) {
    registry.add(router, {
      method: 'post',
      path: '/v1/auth/oauth/google',
      summary: 'Start Google sign-in: the authorization URL and its state',
      tags: ['auth', 'oauth'],
      security: 'none',
      body: schemas.StartBody,
      responses: {
        200: { description: 'Send the browser to authorization_url; Google brings it back to the redirect URI', schema: schemas.Started },
        400: { description: 'The redirect URI is not one of the configured ones' },
        429: { description: 'Too many sign-ins started from this IP' },
      },
      async handler(ctx, { body }) {
        const started = await startGoogleSignIn(
          app,
          { redirectUri: body.redirect_uri, persistent: body.remember_me === true },
          ctx.state.origin.ip,
        );
        setBindingCookie(app, ctx, started.browserBinding);
        ctx.body = { authorization_url: started.authorizationUrl, state: started.state };
      },
    });

    registry.add(router, {
      method: 'post',
      path: CALLBACK_PATH,
      summary: 'Complete Google sign-in with the code and state (JSON answer, like login)',
      tags: ['auth', 'oauth'],
      security: 'none',
      body: schemas.CallbackBody,
      responses: {
        200: { description: 'A token pair, or an MFA challenge when the account has MFA', schema: SignInResultSchema },
        ...SIGN_IN_REFUSALS,
      },
      async handler(ctx, { body }) {
        sendSignIn(app, ctx, await completeGoogleSignIn(app, body, clientInfo(ctx, app.config)));
      },
    });

    registry.add(router, {
      method: 'get',
      path: CALLBACK_PATH,
      summary: 'Where Google sends the browser back: redirects to the web app when OAUTH_*_REDIRECT_URL are set, else JSON',
      tags: ['auth', 'oauth'],
      security: 'none',
      query: schemas.CallbackQuery,
      responses: {
        200: { description: 'Without OAUTH_SUCCESS_REDIRECT_URL: as the POST', schema: SignInResultSchema },
        302: {
          description:
            'To OAUTH_SUCCESS_REDIRECT_URL with the refresh cookie set (or #mfa_token=… when MFA is next), or to OAUTH_FAILURE_REDIRECT_URL?error=<code>',
        },
        ...SIGN_IN_REFUSALS,
      },
      async handler(ctx, { query }) {
        let result: SignInResult;
        const browserBinding = ctx.cookies.get(BINDING_COOKIE) || null;
        setBindingCookie(app, ctx, null);
        try {
          result = await completeGoogleSignIn(app, { ...query, browserBinding }, clientInfo(ctx, app.config));
        } catch (err) {
          if (!failureRedirectUrl || !(err instanceof AppError)) throw err;
          // The problem renderer is skipped: what it would log, is logged here.
          if (err.status >= 500) app.logger.error({ err, requestId: ctx.state.requestId, status: err.status }, 'google sign-in failed');
          return redirectFailed(ctx, err, failureRedirectUrl);
        }
        if (!successRedirectUrl) return sendSignIn(app, ctx, result);
        redirectSignedIn(app, ctx, result, successRedirectUrl);
      },
    });
  }

  registry.add(router, {
    method: 'delete',
    path: '/v1/users/me/identities/:provider',
    summary: 'Unlink my Google account (needs a password on the account; a step-up token when MFA is on)',
    tags: ['users', 'oauth'],
    security: 'bearer',
    guard: requirePerson(app),
    params: schemas.IdentityParams,
    responses: {
      204: { description: 'Unlinked' },
      403: { description: 'MFA is on and X-Verification-Token is missing or invalid' },
      404: { description: 'No such identity is linked' },
      409: { description: 'The account has no password: unlinking would lock it out (set one with the reset flow)' },
    },
    async handler(ctx, { params }) {
      const input = { provider: params.provider, verificationToken: ctx.get(VERIFICATION_HEADER) || undefined };
      await unlinkIdentity(app, actorOf(ctx.state), input, eventOrigin(ctx.state));
      ctx.status = 204;
    },
  });

  return router;
}
