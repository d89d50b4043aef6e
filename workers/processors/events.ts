// The events queue: the outbox relay, run on a schedule (and on demand when the api nudges it).
import type { Context } from '../../shared/context';
import { relayAll } from '../../shared/events/relay';

export function eventsProcessor(app: Context) {
  const settings = { ...app.config.events, markerPrefix: app.key('event-published', '') };
  return async (): Promise<{ published: number }> => ({ published: await relayAll(app.db, app.redis, settings) });
}
