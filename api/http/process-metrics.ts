// The process's own metrics (CPU, memory, file descriptors, event-loop lag, heap, handles,
// version, garbage collection), as prom-client's collectDefaultMetrics() registers them, except
// that garbage-collection timings come from an observer the app can disconnect. prom-client's
// own GC observer can never be disconnected (prometheus/client_js#500): each app built in a
// process kept it, and through its callback everything the app's code could reach, for good. The
// test suite builds dozens of apps per Jest worker; their workers grew to ~1 GB and then took
// longer to exit than Jest allows ("a worker process has failed to exit gracefully").
import { constants, PerformanceObserver, type NodeGCPerformanceDetail, type PerformanceEntry } from 'node:perf_hooks';
import { Histogram, type Registry } from 'prom-client';
// collectDefaultMetrics() runs these modules and lib/metrics/gc (prom-client/lib/defaultMetrics.js).
import eventLoopLag from 'prom-client/lib/metrics/eventLoopLag';
import heapSizeAndUsed from 'prom-client/lib/metrics/heapSizeAndUsed';
import heapSpacesSizeAndUsed from 'prom-client/lib/metrics/heapSpacesSizeAndUsed';
import osMemoryHeap from 'prom-client/lib/metrics/osMemoryHeap';
import processCpuTotal from 'prom-client/lib/metrics/processCpuTotal';
import processHandles from 'prom-client/lib/metrics/processHandles';
import processMaxFileDescriptors from 'prom-client/lib/metrics/processMaxFileDescriptors';
import processOpenFileDescriptors from 'prom-client/lib/metrics/processOpenFileDescriptors';
import processRequests from 'prom-client/lib/metrics/processRequests';
import processResources from 'prom-client/lib/metrics/processResources';
import processStartTime from 'prom-client/lib/metrics/processStartTime';
import version from 'prom-client/lib/metrics/version';

const COLLECTORS = [
  processCpuTotal,
  processStartTime,
  osMemoryHeap,
  processOpenFileDescriptors,
  processMaxFileDescriptors,
  eventLoopLag,
  processResources,
  processHandles,
  processRequests,
  heapSizeAndUsed,
  heapSpacesSizeAndUsed,
  version,
];

const GC_KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};

/** prom-client's `nodejs_gc_duration_seconds` (same name, help, buckets); returns its disconnection. */
function collectGarbageCollections(registry: Registry, prefix: string): () => void {
  const durations = new Histogram({
    name: `${prefix}nodejs_gc_duration_seconds`,
    help: 'Garbage collection duration by kind, one of major, minor, incremental or weakcb.',
    labelNames: ['kind'],
    buckets: [0.001, 0.01, 0.1, 1, 2, 5],
    registers: [registry],
  });
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries() as (PerformanceEntry & { detail?: NodeGCPerformanceDetail })[]) {
      durations.observe({ kind: GC_KINDS[entry.detail?.kind ?? -1] ?? 'unknown' }, entry.duration / 1000);
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  return () => observer.disconnect();
}

/** Registers the process metrics in `registry`; the function returned stops what can be stopped. */
export function collectProcessMetrics(registry: Registry, prefix: string): () => void {
  for (const collect of COLLECTORS) collect(registry, { prefix, eventLoopMonitoringPrecision: 10 });
  return collectGarbageCollections(registry, prefix);
}
