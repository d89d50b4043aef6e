// ioredis connections. Two shapes, as BullMQ's production guide asks: commands issued while serving
// a request fail fast when Redis is down (no offline queue, one retry, a timeout), so the api
// answers 503 at once; blocking worker connections retry forever instead.
import { Redis, type RedisOptions } from 'ioredis';
import type { Config } from './config';

export type { Redis };

export function createRedis(config: Pick<Config, 'redis'>, role: 'command' | 'worker', name: string = role): Redis {
  const failFast: RedisOptions = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: config.redis.commandTimeoutMs,
  };
  const options: RedisOptions = {
    connectionName: `user_service:${name}`,
    connectTimeout: 5000,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
    ...(role === 'command' ? failFast : { maxRetriesPerRequest: null }),
  };
  const redis = new Redis(config.redis.url, options);
  // Errors are reported through health checks and failing commands; without a listener ioredis
  // would print every reconnect attempt as an unhandled error.
  redis.on('error', () => undefined);
  return redis;
}

/** Waits until the connection is ready, or fails after `timeoutMs`. */
export function waitForRedis(redis: Redis, timeoutMs = 5000): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      redis.off('ready', onReady);
      reject(new Error('Redis did not answer in time'));
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    redis.once('ready', onReady);
  });
}

/**
 * PING that also proves the connection is in the configured database. ioredis reports a SELECT the
 * server refuses (`redis://…/99` → "ERR DB index is out of range") only as an 'error' event and
 * carries on in database 0, where PING still answers: selecting the database again fails then, with
 * the server's reason, and puts a connection whose server has since gained the database back in it.
 */
export async function pingDatabase(redis: Redis): Promise<void> {
  const db = redis.options.db ?? 0;
  if (db === 0) await redis.ping();
  else await redis.select(db);
}

export function isRedisUnavailable(err: unknown): boolean {
  const message = (err as Error)?.message ?? '';
  return /enableOfflineQueue|Connection is closed|Command timed out|ECONNREFUSED|MaxRetriesPerRequest|Stream isn't writeable|ETIMEDOUT|ECONNRESET/i.test(
    message,
  );
}

/** Builds keys under the service's prefix: `key('perm', userId)` → `user_service:perm:<id>`. */
export const keyMaker =
  (prefix: string) =>
  (...parts: string[]): string =>
    `${prefix}${parts.join(':')}`;
