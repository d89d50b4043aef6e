// HTTP endpoints of authorization: check, list, grant and revoke permissions.
import Router from '@koa/router';
import type { Context } from '../../shared/context';
import type { RouteRegistry } from '../http/route';
import { eventOrigin, type AppState } from '../http/state';
import { requirePermission, requireUser } from '../auth/authenticate';
import * as schemas from './schemas';
import { check, grantPermission, listPermissions, revokePermission } from './service';

export function authzRoutes(app: Context, registry: RouteRegistry): Router<AppState> {
  const router = new Router<AppState>();
  // Most calls check the caller's own permissions: read them with the session.
  const authenticated = requireUser(app, { withPermissions: true });
  const admin = requirePermission(app, 'permissions:admin');

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
      ctx.body = await check(app, ctx.state.principal!, body.user_id, body.permission);
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
    responses: { 200: { description: 'Permissions', schema: schemas.PermissionList } },
    async handler(ctx, { query }) {
      ctx.body = { permissions: await listPermissions(app, ctx.state.principal!, query.user_id) };
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
      ctx.status = 201;
      ctx.body = await grantPermission(app, ctx.state.principal!.userId, body, eventOrigin(ctx.state));
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
