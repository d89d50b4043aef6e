// HTTP endpoints of the user's own account and public profiles.
import Router from '@koa/router';
import type { Context } from '../../shared/context';
import type { RouteRegistry } from '../http/route';
import { eventOrigin, type AppState } from '../http/state';
import { requireUser } from '../auth/authenticate';
import { VERIFICATION_HEADER } from '../mfa/step-up';
import * as schemas from './schemas';
import { changePassword, deleteMe, getMe, publicProfile, updateMe, type ProfileChanges } from './service';
import { createLimiter } from '../http/rate-limit';

export function userRoutes(app: Context, registry: RouteRegistry): Router<AppState> {
  const router = new Router<AppState>();
  const authenticated = requireUser(app);
  const { attempts, windowSeconds } = app.config.rateLimits.login;
  // Wrong passwords of signed-in users (change password, delete account) count per user.
  const wrongPasswords = createLimiter(app.redis, app.key('rl', 'password-check-user'), attempts, windowSeconds);

  registry.add(router, {
    method: 'get',
    path: '/v1/users/me',
    summary: 'My profile, roles, effective permissions and trading accounts (masked)',
    tags: ['users'],
    security: 'bearer',
    guard: authenticated,
    responses: { 200: { description: 'The profile', schema: schemas.Me } },
    async handler(ctx) {
      ctx.body = await getMe(app, ctx.state.principal!.userId);
    },
  });

  registry.add(router, {
    method: 'patch',
    path: '/v1/users/me',
    summary: 'Change my profile',
    tags: ['users'],
    security: 'bearer',
    guard: authenticated,
    body: schemas.UpdateMeBody,
    responses: { 200: { description: 'The profile after the change', schema: schemas.Me } },
    async handler(ctx, { body }) {
      ctx.body = await updateMe(app, ctx.state.principal!.userId, body as ProfileChanges, eventOrigin(ctx.state));
    },
  });

  registry.add(router, {
    method: 'delete',
    path: '/v1/users/me',
    summary: 'Delete my account (password, or a recent sign-in for Google-only accounts)',
    tags: ['users'],
    security: 'bearer',
    guard: authenticated,
    body: schemas.DeleteMeBody,
    responses: { 204: { description: 'Deleted' } },
    async handler(ctx, { body }) {
      await deleteMe(
        app,
        ctx.state.principal!,
        { password: body.password, verificationToken: ctx.get(VERIFICATION_HEADER) || undefined },
        eventOrigin(ctx.state),
        wrongPasswords,
      );
      ctx.status = 204;
    },
  });

  registry.add(router, {
    method: 'get',
    path: '/v1/users/profile/:user_id',
    summary: "A user's public profile",
    tags: ['users'],
    security: 'bearer',
    guard: authenticated,
    params: schemas.ProfileParams,
    responses: { 200: { description: 'Public fields only', schema: schemas.PublicProfile }, 404: { description: 'No such user' } },
    async handler(ctx, { params }) {
      ctx.body = await publicProfile(app, params.user_id);
    },
  });
  registry.add(router, {
    method: 'post',
    path: '/v1/users/change-password',
    summary: 'Change my password (other sessions stay unless asked)',
    tags: ['users'],
    security: 'bearer',
    guard: authenticated,
    body: schemas.ChangePasswordBody,
    responses: {
      204: { description: 'Changed' },
      400: { description: 'The new password breaks the policy or equals the current one' },
      401: { description: 'Not signed in, or the current password is wrong' },
      429: { description: 'Too many wrong current passwords' },
    },
    async handler(ctx, { body }) {
      await changePassword(app, ctx.state.principal!, body, eventOrigin(ctx.state), wrongPasswords);
      ctx.status = 204;
    },
  });

  return router;
}
