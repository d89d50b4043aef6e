// /metrics serves the process's own metrics next to the HTTP and queue ones, and an app's metrics
// stop observing the process once the app is closed: a closed app must not stay alive through
// them (each one that did kept its whole test file in a Jest worker's memory).
import { call, startTestApp, type TestApp } from '../helpers/app';
import type { Histogram } from 'prom-client';
import { createMetrics } from '../../api/http/metrics';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

/** Allocates enough short-lived garbage for several collections, then lets their entries arrive. */
async function churn(): Promise<number> {
  let total = 0;
  for (let i = 0; i < 200; i++) total += new Array<number>(50_000).fill(i).length;
  await new Promise((resolve) => setTimeout(resolve, 100));
  return total;
}

test('/metrics serves the process metrics, garbage collections included', async () => {
  await churn();
  const { text } = await call(`${t.url}/metrics`);
  for (const name of [
    'process_cpu_seconds_total',
    'process_resident_memory_bytes',
    'process_open_fds',
    'nodejs_eventloop_lag_seconds',
    'nodejs_heap_size_used_bytes',
    'nodejs_version_info',
  ])
    expect([name, new RegExp(`^user_service_${name}(\\{[^}]*\\})? `, 'm').test(text)]).toEqual([name, true]);
  expect(text).toMatch(/^user_service_nodejs_gc_duration_seconds_count\{kind="(minor|major|incremental|weakcb)"\} [1-9]/m);
});

test('closed metrics stop observing garbage collections', async () => {
  const metrics = createMetrics(t.context.queues);
  const collections = async () => {
    const histogram = metrics.registry.getSingleMetric('user_service_nodejs_gc_duration_seconds') as Histogram;
    const { values } = await histogram.get();
    return values.filter((v) => v.metricName?.endsWith('_count')).reduce((sum, v) => sum + v.value, 0);
  };
  await churn();
  expect(await collections()).toBeGreaterThan(0);
  metrics.close();
  const before = await collections();
  await churn();
  expect(await collections()).toBe(before);
});
