// Prometheus metrics: the process defaults, HTTP request counts and durations by route pattern,
// and BullMQ queue depths read at scrape time. One registry per app, so tests can build several.
// They tell an outsider how the service is used and what it runs on, so they are not public: with
// METRICS_PORT they are served by a listener of their own (`metricsApp`, a management port as
// Keycloak keeps one), which operators keep off the public network; without it, only a
// development api serves them.
import Koa from 'koa';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Queues } from '../../shared/queues';
import { collectProcessMetrics } from './process-metrics';

export interface HttpMetrics {
  registry: Registry;
  observe(method: string, route: string, status: number, seconds: number): void;
  /** Disconnects what the metrics registered with the process (the GC observer). */
  close(): void;
}

const JOB_STATES = ['waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized'] as const;

export function createMetrics(queues: Queues): HttpMetrics {
  const registry = new Registry();
  const stopProcessMetrics = collectProcessMetrics(registry, 'user_service_');
  const requests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests',
    labelNames: ['method', 'route', 'status'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration',
    labelNames: ['method', 'route'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  new Gauge({
    name: 'bullmq_queue_jobs',
    help: 'Jobs per queue and state',
    labelNames: ['queue', 'state'],
    registers: [registry],
    async collect() {
      this.reset();
      await Promise.all(
        Object.entries(queues).map(async ([name, queue]) => {
          try {
            const counts = await queue.getJobCounts(...JOB_STATES);
            for (const state of JOB_STATES) this.set({ queue: name, state }, counts[state] ?? 0);
          } catch {
            // Redis down: the gauge is left out of this scrape; /health/ready says why.
          }
        }),
      );
    },
  });
  return {
    registry,
    observe(method, route, status, seconds) {
      requests.inc({ method, route, status: String(status) });
      duration.observe({ method, route }, seconds);
    },
    close: stopProcessMetrics,
  };
}

/** The metrics listener: GET /metrics and nothing else. */
export function metricsApp(metrics: HttpMetrics): Koa {
  const koa = new Koa();
  koa.use(async (ctx) => {
    if (ctx.method !== 'GET' || ctx.path !== '/metrics') {
      ctx.status = 404;
      return;
    }
    ctx.set('Cache-Control', 'no-store');
    ctx.type = metrics.registry.contentType;
    ctx.body = await metrics.registry.metrics();
  });
  return koa;
}
