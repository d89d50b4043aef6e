// HTTP endpoints of the audit trail: the caller's events (or, with audit:read_any, a named user's),
// and exports written by the audit-export queue.
import Router from '@koa/router';
import type { Context } from '../../shared/context';
import type { Caller } from '../../shared/authz/service';
import { readTrail } from '../../shared/audit/trail';
import { CONTENT_TYPES, exportFor, requestExport } from '../../shared/audit/exports';
import type { AppRouterContext, RouteRegistry } from '../http/route';
import type { AppState } from '../http/state';
import { callerPermissions, requireUser } from '../auth/authenticate';
import { eventPageBody } from './presenters';
import * as schemas from './schemas';

export function auditRoutes(app: Context, registry: RouteRegistry): Router<AppState> {
  const router = new Router<AppState>();
  const authenticated = requireUser(app);
  /** The caller; their permissions are read only when they name another user (most calls do not). */
  const callerOf = async (ctx: AppRouterContext, userId: string | undefined): Promise<Caller> => {
    const principal = ctx.state.principal!;
    const others = userId !== undefined && userId !== principal.userId;
    return { userId: principal.userId, permissions: others ? await callerPermissions(app, principal) : [] };
  };

  registry.add(router, {
    method: 'get',
    path: '/v1/audit/events',
    summary: 'My events, newest first (holders of audit:read_any may name a user)',
    tags: ['audit'],
    security: 'bearer',
    guard: authenticated,
    query: schemas.EventsQuery,
    responses: {
      200: { description: 'A page of events with the total', schema: schemas.EventPage },
      403: { description: 'user_id without audit:read_any' },
      404: { description: 'No such user' },
    },
    async handler(ctx, { query }) {
      const types = query.event_type === undefined ? undefined : [query.event_type].flat();
      const filter = { userId: query.user_id, types, from: query.from, to: query.to };
      // The validator fills in the default; the type cannot know it.
      const limit = query.limit ?? schemas.DEFAULT_LIMIT;
      const page = { limit, offset: query.offset, cursor: query.cursor };
      ctx.body = eventPageBody(await readTrail(app, await callerOf(ctx, query.user_id), filter, page), limit, query.offset ?? 0);
    },
  });

  registry.add(router, {
    method: 'post',
    path: '/v1/audit/export',
    summary: 'Export my events as JSON or CSV (written by a worker; poll the export)',
    tags: ['audit'],
    security: 'bearer',
    guard: authenticated,
    body: schemas.ExportBody,
    responses: {
      202: { description: 'Accepted; GET /v1/audit/export/{export_id} until it is ready', schema: schemas.ExportStatus },
      429: { description: 'Too many exports' },
    },
    async handler(ctx, { body }) {
      const row = await requestExport(app, ctx.state.principal!.userId, {
        format: body.format,
        types: body.event_types,
        from: body.from,
        to: body.to,
      });
      ctx.status = 202;
      ctx.set('Location', `/v1/audit/export/${row.id}`);
      ctx.body = { export_id: row.id, status: row.status };
    },
  });

  registry.add(router, {
    method: 'get',
    path: '/v1/audit/export/:export_id',
    summary: 'An export: its status while pending, the file once ready',
    tags: ['audit'],
    security: 'bearer',
    guard: authenticated,
    params: schemas.ExportParams,
    responses: {
      200: { description: schemas.ExportDescription, contentType: 'application/json', alsoContentTypes: ['text/csv'] },
      202: { description: 'Not ready yet', schema: schemas.ExportStatus },
      404: { description: "No such export, or another user's" },
      410: { description: 'Expired (or failed): request a new one' },
    },
    async handler(ctx, { params }) {
      const answer = await exportFor(app, ctx.state.principal!.userId, params.export_id);
      if (answer.kind === 'pending') {
        ctx.status = 202;
        ctx.body = { export_id: answer.row.id, status: answer.row.status };
        return;
      }
      ctx.set('Content-Disposition', `attachment; filename="${answer.filename}"`);
      ctx.set('X-Export-Event-Count', String(answer.row.event_count ?? 0));
      ctx.set('X-Export-Truncated', String(answer.row.truncated));
      ctx.type = CONTENT_TYPES[answer.row.format];
      ctx.body = answer.body;
    },
  });

  return router;
}
