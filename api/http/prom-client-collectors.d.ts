// prom-client ships its per-metric collectors (lib/metrics/*.js, what collectDefaultMetrics()
// runs) without types; ./process-metrics.ts calls them one by one.
declare module 'prom-client/lib/metrics/*' {
  import type { Registry } from 'prom-client';

  const collect: (registry: Registry, config: { prefix?: string; eventLoopMonitoringPrecision?: number }) => void;
  export = collect;
}
