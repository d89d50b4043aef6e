// HTTP endpoints of the user's own account and public profiles.
import Router from '@koa/router';
import type { Context } from '../../shared/context';
import { changePassword, deleteAccount, getProfile, publicProfile, updateProfile } from '../../shared/users/account';
import type { RouteRegistry } from '../http/route';
import { actorOf, eventOrigin, type AppState } from '../http/state';
import { requirePerson, requireUser } from '../auth/authenticate';
import { passwordlessProof } from '../mfa/step-up';
import { meBody, publicProfileBody } from './presenters';
import * as schemas from './schemas';

export function userRoutes(app: Context, registry: RouteRegistry): Router<AppState> {
  const router = new Router<AppState>();
  const authenticated = requireUser(app);
  const person = requirePerson(app);

  registry.add(router, {
    method: 'get',
    path: '/v1/users/me',
    summary: 'My profile, roles, effective permissions and trading accounts (masked)',
    tags: ['users'],
    security: 'bearer',
    guard: person,
    responses: { 200: { description: 'The profile', schema: schemas.Me } },
    async handler(ctx) {
      ctx.body = meBody(await getProfile(app, actorOf(ctx.state).userId));
    },
  });

  registry.add(router, {
    method: 'patch',
    path: '/v1/users/me',
    summary: 'Change my profile',
    tags: ['users'],
    security: 'bearer',
    guard: person,
    body: schemas.UpdateMeBody,
    responses: { 200: { description: 'The profile after the change', schema: schemas.Me } },
    async handler(ctx, { body }) {
      ctx.body = meBody(await updateProfile(app, actorOf(ctx.state).userId, body, eventOrigin(ctx.state)));
    },
  });

  registry.add(router, {
    method: 'delete',
    path: '/v1/users/me',
    summary: 'Delete my account (password, or a recent sign-in for Google-only accounts)',
    tags: ['users'],
    security: 'bearer',
    guard: person,
    body: schemas.DeleteMeBody,
    responses: {
      204: { description: 'Deleted' },
      401: { description: 'Not signed in, or the password is wrong' },
      403: { description: 'A Google-only account without a recent sign-in or verification token' },
      429: { description: 'Too many wrong passwords' },
    },
    async handler(ctx, { body }) {
      const proof = { password: body.password, ...passwordlessProof(ctx) };
      await deleteAccount(app, actorOf(ctx.state), proof, eventOrigin(ctx.state));
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
      ctx.body = publicProfileBody(await publicProfile(app, params.user_id, actorOf(ctx.state).userId));
    },
  });

  registry.add(router, {
    method: 'post',
    path: '/v1/users/change-password',
    summary: 'Change my password (other sessions stay unless asked)',
    tags: ['users'],
    security: 'bearer',
    guard: person,
    body: schemas.ChangePasswordBody,
    responses: {
      204: { description: 'Changed' },
      400: { description: 'The new password breaks the policy or equals the current one' },
      401: { description: 'Not signed in, or the current password is wrong' },
      409: { description: 'The password was changed meanwhile' },
      429: { description: 'Too many wrong current passwords' },
    },
    async handler(ctx, { body }) {
      const change = {
        currentPassword: body.current_password,
        newPassword: body.new_password,
        revokeOtherSessions: body.revoke_other_sessions === true,
      };
      await changePassword(app, actorOf(ctx.state), change, eventOrigin(ctx.state));
      ctx.status = 204;
    },
  });

  return router;
}
