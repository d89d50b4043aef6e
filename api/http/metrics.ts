// Prometheus metrics: the process defaults, HTTP request counts and durations by route pattern,
// and BullMQ queue depths read at scrape time. One registry per app, so tests can build several.
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
