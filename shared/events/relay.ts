// Publishes committed events from the outbox to the Redis Stream, exactly once.
//
// Rows are claimed with FOR UPDATE SKIP LOCKED (never a high-water mark, which would skip rows that
// commit out of order), so concurrent relays take disjoint rows. A relay killed after XADD but
// before its commit leaves the rows unpublished; the Lua script below makes the retry harmless by
// adding an entry only if the event's "published" marker was not yet set, atomically with XADD.
//
// A Redis that lost its data (restarted empty, a new primary without the old one's writes) lost the
// stream with it, and published rows would never be sent again. The relay notices, by the absence of
// a key it keeps there (the "stream epoch"), and puts the newest published events back before
// anything else; the markers, gone too, are written again, so each event is added once.
import type { Knex } from 'knex';
import type { Config } from '../config';
import { execAcknowledged, keyMaker, tagOf, tagged, type Redis } from '../redis';
import { envelopeOf, type EventRow } from './outbox';

const PUBLISH_ONCE = `
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'id', ARGV[3], 'type', ARGV[4], 'occurred_at', ARGV[5], 'payload', ARGV[6])
end
return false`;

// Longer than any relay could take to retry a batch it crashed in.
const MARKER_TTL_SECONDS = 7 * 24 * 3600;

/**
 * Where the relay's "published" markers live: under the service's key prefix, tagged with the
 * stream's hash tag, so that the script's two keys (stream and marker) share a slot on a Redis
 * Cluster and a whole batch runs in one pipeline on the stream's node.
 */
export function markerPrefixFor(config: Pick<Config, 'redis' | 'events'>): string {
  return keyMaker(config.redis.keyPrefix)('event-published', tagged(tagOf(config.events.streamName)), '');
}

/**
 * The key whose absence tells the relay that Redis no longer holds what was published: present
 * from the first relay run on, with no expiry, beside the stream (same hash tag).
 */
export function streamEpochKeyFor(config: Pick<Config, 'redis' | 'events'>): string {
  return keyMaker(config.redis.keyPrefix)('event-stream-epoch', tagged(tagOf(config.events.streamName)));
}

/** The relay's settings, as the events queue builds them from the configuration. */
export function relaySettingsFor(config: Pick<Config, 'redis' | 'events'>): RelaySettings {
  const { waitReplicas, waitTimeoutMs } = config.redis;
  return { ...config.events, markerPrefix: markerPrefixFor(config), epochKey: streamEpochKeyFor(config), waitReplicas, waitTimeoutMs };
}

export interface RelaySettings {
  streamName: string;
  streamMaxLen: number;
  relayBatchSize: number;
  markerPrefix: string;
  epochKey: string;
  /** Replicas that must hold the entries before the rows count as published (REDIS_WAIT_REPLICAS). */
  waitReplicas?: number;
  waitTimeoutMs?: number;
}

type RedisWithPublish = Redis & {
  publishEventOnce(
    stream: string,
    marker: string,
    ttl: number,
    maxLen: number,
    id: string,
    type: string,
    at: string,
    payload: string,
  ): Promise<string | null>;
};

function withPublishCommand(redis: Redis): RedisWithPublish {
  const r = redis as RedisWithPublish;
  if (typeof r.publishEventOnce !== 'function') redis.defineCommand('publishEventOnce', { numberOfKeys: 2, lua: PUBLISH_ONCE });
  return r;
}

/** Adds each row to the stream unless its marker says it is there already. */
async function publishRows(redis: Redis, rows: EventRow[], settings: RelaySettings): Promise<void> {
  const r = withPublishCommand(redis);
  // A failover must not lose an entry whose row says published: the rows commit only once a
  // replica holds the entries (a retry finds the markers and adds nothing twice).
  const acknowledgement = { waitReplicas: settings.waitReplicas ?? 0, waitTimeoutMs: settings.waitTimeoutMs ?? 500 };
  await execAcknowledged(r, acknowledgement, settings.streamName, (pipeline) => {
    const publishing = pipeline as unknown as RedisWithPublish;
    for (const row of rows) {
      const envelope = envelopeOf(row);
      void publishing.publishEventOnce(
        settings.streamName,
        `${settings.markerPrefix}${row.id}`,
        MARKER_TTL_SECONDS,
        settings.streamMaxLen,
        row.id,
        row.type,
        envelope.occurred_at,
        JSON.stringify(envelope),
      );
    }
  });
}

/** Publishes one batch; returns how many events it took. */
export async function relayBatch(db: Knex, redis: Redis, settings: RelaySettings): Promise<number> {
  return db.transaction(async (trx) => {
    const rows: EventRow[] = await trx('events')
      .whereNull('published_at')
      .orderBy('seq')
      .limit(settings.relayBatchSize)
      .forUpdate()
      .skipLocked();
    if (rows.length === 0) return 0;
    await publishRows(redis, rows, settings);
    await trx('events')
      .whereIn(
        'id',
        rows.map((row) => row.id),
      )
      .update({ published_at: trx.fn.now() });
    return rows.length;
  });
}

/**
 * After Redis lost its data: publishes again, in order, the newest published events, as many as
 * the stream keeps (EVENTS_STREAM_MAXLEN), then sets the epoch key. Rows stay as they are (the
 * events table lets published_at be set once). A relay that dies midway leaves the key unset and
 * the next run starts over; the markers make the repeat add nothing. Consumers, whose group
 * positions went with the stream, meet events again that they may have handled before the loss,
 * and recognise them by their id (docs/events.md). Returns how many events it put back.
 */
export async function republishAfterReset(db: Knex, redis: Redis, settings: RelaySettings): Promise<number> {
  if (await redis.exists(settings.epochKey)) return 0;
  const oldest = await db('events')
    .whereNotNull('published_at')
    .orderBy('seq', 'desc')
    .offset(settings.streamMaxLen - 1)
    .first('seq');
  let after = oldest ? Number(oldest.seq) - 1 : 0;
  let total = 0;
  for (;;) {
    const rows: EventRow[] = await db('events')
      .whereNotNull('published_at')
      .where('seq', '>', after)
      .orderBy('seq')
      .limit(settings.relayBatchSize);
    if (rows.length === 0) break;
    await publishRows(redis, rows, settings);
    total += rows.length;
    after = Number(rows.at(-1)!.seq);
  }
  await redis.set(settings.epochKey, new Date().toISOString());
  return total;
}

/** Drains the outbox, after putting back what a Redis data loss took: batches until one comes back short. */
export async function relayAll(db: Knex, redis: Redis, settings: RelaySettings): Promise<{ published: number; republished: number }> {
  const republished = await republishAfterReset(db, redis, settings);
  let published = 0;
  for (;;) {
    const n = await relayBatch(db, redis, settings);
    published += n;
    if (n < settings.relayBatchSize) return { published, republished };
  }
}
