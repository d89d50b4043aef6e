// HTTP endpoints of a user's email change: the request, and the confirmation with the link's token.
import Router from '@koa/router';
import type { Context } from '../../shared/context';
import { confirmEmailChange, EMAIL_CHANGE_TTL_HOURS, requestEmailChange } from '../../shared/users/email-change';
import type { RouteRegistry } from '../http/route';
import { actorOf, eventOrigin, type AppState } from '../http/state';
import { requirePerson } from '../auth/authenticate';
import { passwordlessProof } from '../mfa/step-up';
import * as schemas from './schemas';

export function emailChangeRoutes(app: Context, registry: RouteRegistry): Router<AppState> {
  const router = new Router<AppState>();
  const person = requirePerson(app);

  registry.add(router, {
    method: 'post',
    path: '/v1/users/me/email',
    summary: 'Change my email address: a link goes to the new address, a notice to the old one',
    tags: ['users'],
    security: 'bearer',
    guard: person,
    body: schemas.EmailChangeBody,
    responses: {
      202: { description: 'The link is on its way to the new address', schema: schemas.EmailChangeRequested },
      401: { description: 'Not signed in, or the password is wrong' },
      403: { description: 'An account without a password, without a verification token or a recent sign-in' },
      409: { description: 'Another account uses the address (email_taken)' },
      429: { description: 'Too many wrong passwords, or too many emails to that address' },
    },
    async handler(ctx, { body }) {
      const input = { newEmail: body.new_email, password: body.password, ...passwordlessProof(ctx) };
      await requestEmailChange(app, actorOf(ctx.state), input, eventOrigin(ctx.state));
      ctx.status = 202;
      ctx.body = { status: 'pending_confirmation', expires_in: EMAIL_CHANGE_TTL_HOURS * 3600 };
    },
  });

  registry.add(router, {
    method: 'post',
    path: '/v1/users/me/email/confirm',
    summary: 'Confirm the new address with the token of its link (my other sessions end)',
    tags: ['users'],
    security: 'bearer',
    guard: person,
    body: schemas.EmailChangeConfirmBody,
    responses: {
      200: { description: 'The address changed and is verified', schema: schemas.EmailChanged },
      400: { description: 'The token is invalid, used, expired or not of this account (invalid_token)' },
      409: { description: 'Another account took the address since the request (email_taken)' },
    },
    async handler(ctx, { body }) {
      const changed = await confirmEmailChange(app, actorOf(ctx.state), body.token, eventOrigin(ctx.state));
      ctx.body = { email: changed.email, email_verified: true };
    },
  });

  return router;
}
