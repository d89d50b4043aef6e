// HTTP endpoints of password reset: ask for a link, and set a new password with it.
import Router from '@koa/router';
import type { Context } from '../../shared/context';
import { resetPassword } from '../../shared/auth/password-reset';
import { requestPasswordReset } from '../../shared/auth/address-requests';
import type { RouteRegistry } from '../http/route';
import { eventOrigin, type AppState } from '../http/state';
import * as schemas from './schemas';

const ACCEPTED = { status: 'accepted' as const, message: 'If an account uses this email, a password reset link is on its way.' };

export function passwordResetRoutes(app: Context, registry: RouteRegistry): Router<AppState> {
  const router = new Router<AppState>();

  registry.add(router, {
    method: 'post',
    path: '/v1/auth/password/reset-request',
    summary: 'Email a password reset link (same answer whether or not the email exists)',
    tags: ['auth'],
    security: 'none',
    body: schemas.ResetRequestBody,
    responses: {
      202: { description: 'Accepted', schema: schemas.Accepted },
      429: { description: 'Too many requests from this IP or for this email' },
    },
    async handler(ctx, { body }) {
      await requestPasswordReset(app, body.email, eventOrigin(ctx.state));
      ctx.status = 202;
      ctx.body = ACCEPTED;
    },
  });

  registry.add(router, {
    method: 'post',
    path: '/v1/auth/password/reset',
    summary: 'Set a new password with the emailed token; every session is signed out',
    tags: ['auth'],
    security: 'none',
    body: schemas.ResetBody,
    responses: {
      204: { description: 'Password changed; every session revoked (sign in again)' },
      400: { description: 'Invalid, used or expired token, or a password the policy refuses' },
    },
    async handler(ctx, { body }) {
      await resetPassword(app, body.token, body.new_password, eventOrigin(ctx.state));
      ctx.status = 204;
    },
  });

  return router;
}
