// HTTP endpoints of the user's own account and public profiles.
import Router from '@koa/router';
import type { Context } from '../../shared/context';
import type { RouteRegistry } from '../http/route';
import { eventOrigin, type AppState } from '../http/state';
import { requireUser } from '../auth/authenticate';
import { VERIFICATION_HEADER } from '../mfa/step-up';
import * as schemas from './schemas';
import { deleteMe, getMe, publicProfile, updateMe, type ProfileChanges } from './service';

export function userRoutes(app: Context, registry: RouteRegistry): Router<AppState> {
  const router = new Router<AppState>();
  const authenticated = requireUser(app);

  registry.add(router, {
    method: 'get', path: '/v1/users/me', summary: 'My profile, roles, effective permissions and trading accounts (masked)', tags: ['users'], security: 'bearer',
    guard: authenticated,
    responses: { 200: { description: 'The profile', schema: schemas.Me } },
    async handler(ctx) {
      ctx.body = await getMe(app, ctx.state.principal!.userId);
    },
  });

  registry.add(router, {
    method: 'patch', path: '/v1/users/me', summary: 'Change my profile', tags: ['users'], security: 'bearer',
    guard: authenticated,
    body: schemas.UpdateMeBody,
    responses: { 200: { description: 'The profile after the change', schema: schemas.Me } },
    async handler(ctx, { body }) {
      ctx.body = await updateMe(app, ctx.state.principal!.userId, body as ProfileChanges, eventOrigin(ctx.state));
    },
  });

  registry.add(router, {
    method: 'delete', path: '/v1/users/me', summary: 'Delete my account (password, or a recent sign-in for Google-only accounts)', tags: ['users'], security: 'bearer',
    guard: authenticated,
    body: schemas.DeleteMeBody,
    responses: { 204: { description: 'Deleted' } },
    async handler(ctx, { body }) {
      await deleteMe(app, ctx.state.principal!, { password: body.password, verificationToken: ctx.get(VERIFICATION_HEADER) || undefined }, eventOrigin(ctx.state));
      ctx.status = 204;
    },
  });

  registry.add(router, {
    method: 'get', path: '/v1/users/profile/:user_id', summary: 'A user\'s public profile', tags: ['users'], security: 'bearer',
    guard: authenticated,
    params: schemas.ProfileParams,
    responses: { 200: { description: 'Public fields only', schema: schemas.PublicProfile }, 404: { description: 'No such user' } },
    async handler(ctx, { params }) {
      ctx.body = await publicProfile(app, params.user_id);
    },
  });
  return router;
}
