// HTTP endpoints of support's account acts (/v1/admin/users): reads need users:read; every write
// needs users:admin and the admin's step-up token (X-Verification-Token, from
// POST /v1/mfa/totp/verify), so a stolen access token alone cannot act on accounts.
import Router from '@koa/router';
import type { Context } from '../../shared/context';
import { adminUserDetail, searchUsers } from '../../shared/users/admin-users';
import {
  assignRole,
  markEmailVerified,
  reactivateUser,
  removeRole,
  resetMfa,
  revokeUserSessions,
  sendPasswordReset,
  suspendUser,
  unlockUser,
  type AdminAct,
} from '../../shared/users/lifecycle';
import type { RouteRegistry } from '../http/route';
import { actorOf, eventOrigin, type AppState } from '../http/state';
import { requirePermission, requireUser } from '../auth/authenticate';
import { requireVerificationToken } from '../mfa/step-up';
import { userDetailBody, userPageBody } from './presenters';
import * as schemas from './schemas';

const PATH = '/v1/admin/users';
const TAGS = ['admin'];

export function adminUserRoutes(app: Context, registry: RouteRegistry): Router<AppState> {
  const router = new Router<AppState>();
  const authenticated = requireUser(app, { withPermissions: true });
  const reader = [authenticated, requirePermission(app, 'users:read')];
  const writer = [authenticated, requirePermission(app, 'users:admin'), requireVerificationToken(app)];
  const actOf = (state: AppState): AdminAct => ({ actor: actorOf(state), origin: eventOrigin(state) });
  const writeResponses = {
    403: { description: 'Without users:admin, or without a valid X-Verification-Token (verification_required)' },
    404: { description: 'No such user' },
  };

  registry.add(router, {
    method: 'get',
    path: PATH,
    summary: 'Search accounts by email prefix or name, newest first (keyset pages)',
    tags: TAGS,
    security: 'bearer',
    guard: reader,
    query: schemas.SearchQuery,
    responses: { 200: { description: 'A page of accounts', schema: schemas.UserPage } },
    async handler(ctx, { query }) {
      const page = await searchUsers(app, query);
      ctx.body = userPageBody(page.users, page.nextCursor);
    },
  });

  registry.add(router, {
    method: 'get',
    path: `${PATH}/:user_id`,
    summary: 'One account: profile, roles, direct grants, identities, session count, trading accounts, MFA state',
    tags: TAGS,
    security: 'bearer',
    guard: reader,
    params: schemas.UserParams,
    responses: { 200: { description: 'The account', schema: schemas.UserDetail }, 404: { description: 'No such user' } },
    async handler(ctx, { params }) {
      ctx.body = userDetailBody(await adminUserDetail(app, params.user_id));
    },
  });

  registry.add(router, {
    method: 'post',
    path: `${PATH}/:user_id/suspend`,
    summary: 'Suspend an account: sign-in refused, every session ended',
    tags: TAGS,
    security: 'bearer',
    guard: writer,
    params: schemas.UserParams,
    body: schemas.SuspendBody,
    responses: {
      200: { description: 'Suspended (also when it already was)', schema: schemas.StatusAnswer },
      ...writeResponses,
      409: { description: 'Your own account (self_action), or the last active admin (last_admin)' },
    },
    async handler(ctx, { params, body }) {
      const change = await suspendUser(app, actOf(ctx.state), params.user_id, body.reason_code);
      ctx.body = { id: change.id, status: change.status };
    },
  });

  registry.add(router, {
    method: 'post',
    path: `${PATH}/:user_id/reactivate`,
    summary: 'Lift a suspension',
    tags: TAGS,
    security: 'bearer',
    guard: writer,
    params: schemas.UserParams,
    body: schemas.EmptyBody,
    responses: { 200: { description: 'The status now', schema: schemas.StatusAnswer }, ...writeResponses },
    async handler(ctx, { params }) {
      const change = await reactivateUser(app, actOf(ctx.state), params.user_id);
      ctx.body = { id: change.id, status: change.status };
    },
  });

  registry.add(router, {
    method: 'post',
    path: `${PATH}/:user_id/mfa/reset`,
    summary: 'Turn MFA off for a user who lost their device (sessions ended, user notified by email)',
    tags: TAGS,
    security: 'bearer',
    guard: writer,
    params: schemas.UserParams,
    body: schemas.EmptyBody,
    responses: { 204: { description: 'MFA is off' }, ...writeResponses, 409: { description: 'MFA is not enabled' } },
    async handler(ctx, { params }) {
      await resetMfa(app, actOf(ctx.state), params.user_id);
      ctx.status = 204;
    },
  });

  registry.add(router, {
    method: 'delete',
    path: `${PATH}/:user_id/sessions`,
    summary: "End every session of the user's",
    tags: TAGS,
    security: 'bearer',
    guard: writer,
    params: schemas.UserParams,
    responses: { 204: { description: 'Ended' }, ...writeResponses },
    async handler(ctx, { params }) {
      await revokeUserSessions(app, actOf(ctx.state), params.user_id);
      ctx.status = 204;
    },
  });

  registry.add(router, {
    method: 'delete',
    path: `${PATH}/:user_id/sessions/:session_id`,
    summary: 'End one session of the user',
    tags: TAGS,
    security: 'bearer',
    guard: writer,
    params: schemas.SessionParams,
    responses: {
      204: { description: 'Ended' },
      ...writeResponses,
      404: { description: 'No such user, or no such live session of theirs' },
    },
    async handler(ctx, { params }) {
      await revokeUserSessions(app, actOf(ctx.state), params.user_id, params.session_id);
      ctx.status = 204;
    },
  });

  registry.add(router, {
    method: 'post',
    path: `${PATH}/:user_id/roles`,
    summary: 'Give a role (permissions change at once)',
    tags: TAGS,
    security: 'bearer',
    guard: writer,
    params: schemas.UserParams,
    body: schemas.RoleBody,
    responses: { 200: { description: "The user's roles now", schema: schemas.RolesAnswer }, ...writeResponses },
    async handler(ctx, { params, body }) {
      ctx.body = { roles: await assignRole(app, actOf(ctx.state), params.user_id, body.role) };
    },
  });

  registry.add(router, {
    method: 'delete',
    path: `${PATH}/:user_id/roles/:role`,
    summary: 'Take a role away (permissions change at once)',
    tags: TAGS,
    security: 'bearer',
    guard: writer,
    params: schemas.RoleParams,
    responses: {
      204: { description: 'Removed' },
      ...writeResponses,
      404: { description: 'No such user, or the user does not hold the role' },
      409: { description: 'The admin role of your own account (self_action), or of the last active admin (last_admin)' },
    },
    async handler(ctx, { params }) {
      await removeRole(app, actOf(ctx.state), params.user_id, params.role);
      ctx.status = 204;
    },
  });

  registry.add(router, {
    method: 'post',
    path: `${PATH}/:user_id/unlock`,
    summary: "Clear the account's sign-in and MFA limits",
    tags: TAGS,
    security: 'bearer',
    guard: writer,
    params: schemas.UserParams,
    body: schemas.EmptyBody,
    responses: { 204: { description: 'Unlocked' }, ...writeResponses },
    async handler(ctx, { params }) {
      await unlockUser(app, actOf(ctx.state), params.user_id);
      ctx.status = 204;
    },
  });

  registry.add(router, {
    method: 'post',
    path: `${PATH}/:user_id/verify-email`,
    summary: "Mark the account's email verified",
    tags: TAGS,
    security: 'bearer',
    guard: writer,
    params: schemas.UserParams,
    body: schemas.EmptyBody,
    responses: { 200: { description: 'The status now', schema: schemas.StatusAnswer }, ...writeResponses },
    async handler(ctx, { params }) {
      const change = await markEmailVerified(app, actOf(ctx.state), params.user_id);
      ctx.body = { id: change.id, status: change.status };
    },
  });

  registry.add(router, {
    method: 'post',
    path: `${PATH}/:user_id/password-reset`,
    summary: 'Send the user a password reset email',
    tags: TAGS,
    security: 'bearer',
    guard: writer,
    params: schemas.UserParams,
    body: schemas.EmptyBody,
    responses: {
      202: { description: 'The email is queued', schema: schemas.Queued },
      ...writeResponses,
      409: { description: 'The account cannot sign in (suspended)' },
    },
    async handler(ctx, { params }) {
      await sendPasswordReset(app, actOf(ctx.state), params.user_id);
      ctx.status = 202;
      ctx.body = { status: 'queued' };
    },
  });

  return router;
}
