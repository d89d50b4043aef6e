// Publishes committed events from the outbox to the Redis Stream, exactly once.
//
// Rows are claimed with FOR UPDATE SKIP LOCKED (never a high-water mark, which would skip rows that
// commit out of order), so concurrent relays take disjoint rows. A relay killed after XADD but
// before its commit leaves the rows unpublished; the Lua script below makes the retry harmless by
// adding an entry only if the event's "published" marker was not yet set, atomically with XADD.
import type { Knex } from 'knex';
import type { Config } from '../config';
import { keyMaker, tagOf, tagged, waitForReplicas, type Redis } from '../redis';
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

export interface RelaySettings {
  streamName: string;
  streamMaxLen: number;
  relayBatchSize: number;
  markerPrefix: string;
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

/** Publishes one batch; returns how many events it took. */
export async function relayBatch(db: Knex, redis: Redis, settings: RelaySettings): Promise<number> {
  const r = withPublishCommand(redis);
  return db.transaction(async (trx) => {
    const rows: EventRow[] = await trx('events')
      .whereNull('published_at')
      .orderBy('seq')
      .limit(settings.relayBatchSize)
      .forUpdate()
      .skipLocked();
    if (rows.length === 0) return 0;
    const pipeline = r.pipeline() as unknown as RedisWithPublish & { exec(): Promise<[Error | null, unknown][]> };
    for (const row of rows) {
      const envelope = envelopeOf(row);
      void pipeline.publishEventOnce(
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
    // A failover must not lose an entry whose row says published: the rows commit only once a
    // replica holds the entries (a retry finds the markers and adds nothing twice).
    const checkReplicas = waitForReplicas(pipeline, {
      waitReplicas: settings.waitReplicas ?? 0,
      waitTimeoutMs: settings.waitTimeoutMs ?? 500,
    });
    const results = await pipeline.exec();
    const failed = (results ?? []).find(([err]) => err);
    if (failed) throw failed[0]!;
    checkReplicas(results);
    await trx('events')
      .whereIn(
        'id',
        rows.map((row) => row.id),
      )
      .update({ published_at: trx.fn.now() });
    return rows.length;
  });
}

/** Drains the outbox: batches until one comes back short. */
export async function relayAll(db: Knex, redis: Redis, settings: RelaySettings): Promise<number> {
  let total = 0;
  for (;;) {
    const n = await relayBatch(db, redis, settings);
    total += n;
    if (n < settings.relayBatchSize) return total;
  }
}
