// Liveness (the process answers) and readiness (PostgreSQL and Redis answer, Redis in the database
// of REDIS_URL and taking writes: a primary, or a cluster whose state is ok; the read replica's
// state is reported without deciding readiness), plus /metrics where the api itself serves it (development without METRICS_PORT;
// api/http/metrics.ts).
import Router from '@koa/router';
import { Type } from '@sinclair/typebox';
import type { Context } from '../../shared/context';
import { checkRedisWritable } from '../../shared/redis';
import type { RouteRegistry } from '../http/route';
import type { AppState } from '../http/state';
import type { HttpMetrics } from '../http/metrics';

const CHECK_TIMEOUT_MS = 2000;

function withTimeout<T>(work: Promise<T>): Promise<T> {
  return Promise.race([work, new Promise<T>((_, reject) => setTimeout(() => reject(new Error('timeout')), CHECK_TIMEOUT_MS).unref())]);
}

async function check(work: () => Promise<unknown>): Promise<'ok' | 'down'> {
  try {
    await withTimeout(work());
    return 'ok';
  } catch {
    return 'down';
  }
}

const Status = Type.Object({ status: Type.String(), checks: Type.Optional(Type.Record(Type.String(), Type.String())) });

export function healthRoutes(app: Context, registry: RouteRegistry, metrics: HttpMetrics | null): Router<AppState> {
  const router = new Router<AppState>();
  registry.add(router, {
    method: 'get',
    path: '/health/live',
    summary: 'Liveness: the process answers',
    tags: ['health'],
    security: 'none',
    responses: { 200: { description: 'Alive', schema: Status } },
    handler(ctx) {
      ctx.body = { status: 'ok' };
    },
  });
  registry.add(router, {
    method: 'get',
    path: '/health/ready',
    summary: 'Readiness: PostgreSQL and Redis answer',
    tags: ['health'],
    security: 'none',
    responses: { 200: { description: 'Ready', schema: Status }, 503: { description: 'A dependency is down', schema: Status } },
    async handler(ctx) {
      const [database, redis, replica] = await Promise.all([
        check(() => app.db.raw('SELECT 1')),
        check(() => checkRedisWritable(app.redis)),
        app.replicaState(),
      ]);
      // The read replica is reported, never required: without it its reads go to the primary.
      const ready = database === 'ok' && redis === 'ok';
      ctx.status = ready ? 200 : 503;
      ctx.set('Cache-Control', 'no-store');
      ctx.body = {
        status: ready ? 'ok' : 'unavailable',
        checks: { database, redis, ...(replica !== 'off' && { database_replica: replica }) },
      };
    },
  });
  if (metrics) {
    registry.add(router, {
      method: 'get',
      path: '/metrics',
      summary: 'Prometheus metrics (requests, queues, process)',
      tags: ['health'],
      security: 'none',
      responses: { 200: { description: 'Prometheus text format', contentType: 'text/plain' } },
      async handler(ctx) {
        ctx.type = metrics.registry.contentType;
        ctx.body = await metrics.registry.metrics();
      },
    });
  }
  return router;
}
