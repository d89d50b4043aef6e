// The events queue: the outbox relay (shared/events/relay.ts), run on a schedule.
import { markerPrefixFor, relayAll } from '../../shared/events/relay';
import { JOB_NAMES } from '../../shared/queues';
import type { QueueDeclaration } from '../declaration';

export const events: QueueDeclaration = {
  name: 'events',
  start(app) {
    const { waitReplicas, waitTimeoutMs } = app.config.redis;
    const settings = { ...app.config.events, markerPrefix: markerPrefixFor(app.config), waitReplicas, waitTimeoutMs };
    return { process: async () => ({ published: await relayAll(app.db, app.redis, settings) }) };
  },
  schedules: (app) => [{ id: 'relay-events', everyMs: app.config.events.relayIntervalMs, jobName: JOB_NAMES.relayEvents }],
};
