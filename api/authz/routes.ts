// HTTP endpoints of authorization: check, list, grant and revoke permissions.
import Router from '@koa/router';
import type { Context as KoaContext } from 'koa';
import type { Context } from '../../shared/context';
import { check, grantPermission, listPermissions, revokePermission, type Caller } from '../../shared/authz/service';
import type { RouteRegistry } from '../http/route';
import { eventOrigin, type AppState } from '../http/state';
import { callerPermissions, requirePermission, requireUser } from '../auth/authenticate';
import { grantBody, permissionListBody } from './presenters';
import * as schemas from './schemas';

export function authzRoutes(app: Context, registry: RouteRegistry): Router<AppState> {
  const router = new Router<AppState>();
  // Most calls check the caller's own permissions: read them with the session.
  const authenticated = requireUser(app, { withPermissions: true });
  const admin = requirePermission(app, 'permissions:admin');
  const callerOf = async (ctx: KoaContext & { state: AppState }): Promise<Caller> => {
    const principal = ctx.state.principal!;
    return { userId: principal.userId, permissions: await callerPermissions(app, principal) };
  };

  registry.add(router, {
    method: 'post',
    path: '/v1/authz/check',
    summary: 'May this user do that? (the caller by default; others need authz:check_any)',
    tags: ['authz'],
    security: 'bearer',
    guard: authenticated,
    body: schemas.CheckBody,
    responses: { 200: { description: 'The answer', schema: schemas.CheckResult }, 404: { description: 'No such user' } },
    async handler(ctx, { body }) {
      const { allowed, userId } = await check(app, await callerOf(ctx), body.user_id, body.permission);
      ctx.body = { allowed, permission: body.permission, user_id: userId };
    },
  });

  registry.add(router, {
    method: 'get',
    path: '/v1/authz/permissions',
    summary: 'Effective permissions with their source and expiry (admins may name a user)',
    tags: ['authz'],
    security: 'bearer',
    guard: authenticated,
    query: schemas.PermissionsQuery,
    responses: { 200: { description: 'Permissions', schema: schemas.PermissionList }, 404: { description: 'No such user' } },
    async handler(ctx, { query }) {
      ctx.body = permissionListBody(await listPermissions(app, await callerOf(ctx), query.user_id));
    },
  });

  registry.add(router, {
    method: 'post',
    path: '/v1/authz/permissions',
    summary: 'Grant a permission directly, optionally until a time (admin)',
    tags: ['authz'],
    security: 'bearer',
    guard: [authenticated, admin],
    body: schemas.GrantBody,
    responses: { 201: { description: 'The grant', schema: schemas.Grant }, 404: { description: 'No such user' } },
    async handler(ctx, { body }) {
      const input = { userId: body.user_id, permission: body.permission, expiresAt: body.expires_at };
      ctx.status = 201;
      ctx.body = grantBody(await grantPermission(app, ctx.state.principal!.userId, input, eventOrigin(ctx.state)));
    },
  });

  registry.add(router, {
    method: 'delete',
    path: '/v1/authz/permissions/:permission_id',
    summary: 'Revoke a direct grant (admin)',
    tags: ['authz'],
    security: 'bearer',
    guard: [authenticated, admin],
    params: schemas.GrantParams,
    responses: { 204: { description: 'Revoked' }, 404: { description: 'No such grant' } },
    async handler(ctx, { params }) {
      await revokePermission(app, params.permission_id, eventOrigin(ctx.state));
      ctx.status = 204;
    },
  });
  return router;
}
