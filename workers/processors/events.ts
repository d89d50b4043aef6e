// The events queue: the outbox relay (shared/events/relay.ts), run on a schedule.
import { relayAll, relaySettingsFor } from '../../shared/events/relay';
import { JOB_NAMES } from '../../shared/queues';
import type { QueueDeclaration } from '../declaration';

export const events: QueueDeclaration = {
  name: 'events',
  start(app) {
    const settings = relaySettingsFor(app.config);
    return {
      process: async () => {
        const result = await relayAll(app.db, app.redis, settings);
        if (result.republished > 0)
          app.logger.warn(
            { republished: result.republished, stream: settings.streamName },
            'the event stream was not in Redis (a data loss, or a first start): the newest published events were added again',
          );
        return result;
      },
    };
  },
  schedules: (app) => [{ id: 'relay-events', everyMs: app.config.events.relayIntervalMs, jobName: JOB_NAMES.relayEvents }],
};
