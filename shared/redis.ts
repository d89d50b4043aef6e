// ioredis connections. Two shapes, as BullMQ's production guide asks: commands issued while serving
// a request fail fast when Redis is down (no offline queue, one retry, a timeout), so the api
// answers 503 at once; blocking worker connections retry forever instead.
//
// Three topologies from the configuration, one factory: one Redis (REDIS_URL), a primary followed
// through Sentinel, or a Redis Cluster. On a cluster every command or script touching several keys
// must keep them in one hash slot: the keys that go together share a hash tag (`{…}`, see `tagged`).
import { Cluster, Redis as Single, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Config } from './config';

export type Redis = Single | Cluster;
export { Cluster };

/**
 * A primary demoted to a replica (a Sentinel or managed failover behind the same address) answers
 * writes with READONLY: reconnect, which finds the new primary, and resend the command.
 */
const reconnectOnReadOnly = (err: Error): 2 | false => (err.message.startsWith('READONLY') ? 2 : false);

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
    reconnectOnError: reconnectOnReadOnly,
    ...(role === 'command' ? failFast : { maxRetriesPerRequest: null }),
  };
  const redis = connect(config.redis, options, role);
  // Errors are reported through health checks and failing commands; without a listener ioredis
  // would print every reconnect attempt as an unhandled error.
  redis.on('error', () => undefined);
  return redis;
}

function connect(settings: Config['redis'], options: RedisOptions, role: 'command' | 'worker'): Redis {
  const { topology } = settings;
  if (topology.kind === 'single') return new Single(settings.url, options);
  const url = new URL(settings.url);
  const auth = { username: decodeURIComponent(url.username) || undefined, password: decodeURIComponent(url.password) || undefined };
  if (topology.kind === 'sentinel') {
    return new Single({
      ...options,
      ...auth,
      db: Number(url.pathname.replace(/^\//, '') || 0),
      sentinels: topology.sentinels,
      name: topology.masterName,
      // No failoverDetector: at a +switch-master it closes the connection for good in some
      // interleavings (measured: a worker's commands all failing "Connection is closed" after a
      // failover). A demoted primary refuses writes (READONLY → reconnect) or drops the connection,
      // and either way the reconnect asks the sentinels for the new primary.
      sentinelRetryStrategy: (attempt) => Math.min(attempt * 200, 2000),
    });
  }
  const clusterOptions: ClusterOptions = {
    redisOptions: { ...options, ...auth },
    enableOfflineQueue: role === 'worker',
    clusterRetryStrategy: (attempt) => Math.min(attempt * 200, 2000),
    // During a failover: retry redirections and CLUSTERDOWN briefly, then fail (503), never hang.
    maxRedirections: 16,
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 300,
    retryDelayOnTryAgain: 200,
    slotsRefreshTimeout: 2000,
  };
  return new Cluster(topology.nodes, clusterOptions);
}

/** `{value}`: keys holding the same tag are in one hash slot of a Redis Cluster (and anywhere else, harmless). */
export const tagged = (value: string): string => `{${value}}`;

/**
 * The hash tag a key is placed by on a cluster: what lies between its first `{` and the next `}`
 * when that is not empty, else the whole key. A key starting with `{tagOf(k)}` shares k's slot.
 */
export function tagOf(key: string): string {
  const open = key.indexOf('{');
  const close = open >= 0 ? key.indexOf('}', open + 1) : -1;
  return close > open + 1 ? key.slice(open + 1, close) : key;
}

/** Every key matching `pattern`: on a cluster, on each primary. For maintenance and tests, never requests. */
export async function scanKeys(redis: Redis, pattern: string): Promise<string[]> {
  const nodes = redis instanceof Cluster ? redis.nodes('master') : [redis];
  const found: string[] = [];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      found.push(...keys);
    } while (cursor !== '0');
  }
  return found;
}

type Pipeline = ReturnType<Redis['pipeline']>;

/** A Redis error reply saying a slot lives elsewhere now (after a failover or a resharding). */
const isSlotMoved = (err: unknown) => /^(MOVED|ASK) /.test((err as Error)?.message ?? '');

/**
 * Runs the writes `fill` puts in a pipeline and, when replicas must acknowledge them
 * (REDIS_WAIT_REPLICAS), WAIT after them: in a pipeline WAIT reaches the node that took the
 * writes, on a cluster too (a pipeline goes to its keys' node). Throws the first command's error,
 * or NOREPLICAS when fewer replicas acknowledged in time. ioredis does not follow MOVED for a
 * pipeline holding a keyless WAIT, so after a failover one command on `routingKey` (a key of the
 * pipeline) lets ioredis learn the slot's new node from the redirect, and the pipeline is built
 * again, once; `fill`'s writes must be safe to repeat.
 */
export async function execAcknowledged(
  redis: Redis,
  settings: Pick<Config['redis'], 'waitReplicas' | 'waitTimeoutMs'>,
  routingKey: string,
  fill: (pipeline: Pipeline) => void,
): Promise<void> {
  for (let attempt = 1; ; attempt += 1) {
    const pipeline = redis.pipeline();
    fill(pipeline);
    if (settings.waitReplicas) pipeline.wait(settings.waitReplicas, settings.waitTimeoutMs);
    const results = (await pipeline.exec()) ?? [];
    const failed = results.find(([err]) => err)?.[0];
    if (failed && isSlotMoved(failed) && attempt === 1 && redis instanceof Cluster) {
      await redis.exists(routingKey);
      continue;
    }
    if (failed) throw failed;
    if (!settings.waitReplicas) return;
    const acknowledged = Number(results.at(-1)?.[1] ?? 0);
    if (acknowledged < settings.waitReplicas)
      throw new Error(`NOREPLICAS: ${acknowledged} of ${settings.waitReplicas} Redis replicas acknowledged in time`);
    return;
  }
}

/** Deletes keys one by one (they may be in different slots of a cluster). */
export async function unlinkKeys(redis: Redis, keys: string[]): Promise<void> {
  await Promise.all(keys.map((key) => redis.unlink(key)));
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
  if (redis instanceof Cluster) return;
  const db = redis.options.db ?? 0;
  if (db === 0) await redis.ping();
  else await redis.select(db);
}

/**
 * Readiness: Redis answers, in the configured database, and takes writes. PING alone said "ready"
 * while every write failed: on a cluster whose state is not ok (a primary lost, no failover yet),
 * and on a primary demoted to a read-only replica.
 */
export async function checkRedisWritable(redis: Redis): Promise<void> {
  if (redis instanceof Cluster) {
    const info = String(await redis.cluster('INFO'));
    if (!/^cluster_state:ok\s*$/m.test(info)) throw new Error('the Redis Cluster state is not ok');
    return;
  }
  await pingDatabase(redis);
  const [role] = (await redis.role()) as [string, ...unknown[]];
  if (role !== 'master') throw new Error(`Redis is a ${role}, not a primary: it refuses writes`);
}

/** The failures that mean Redis cannot be used right now (503), not a bug of ours (500). */
export function isRedisUnavailable(err: unknown): boolean {
  const message = (err as Error)?.message ?? '';
  // Redis's own error replies start with their code, in capitals: matched only there, so that
  // "loading" or "readonly" in some other error's text is not mistaken for an outage.
  // MOVED and ASK reach here only when a redirect could not be followed (execAcknowledged tries once).
  if (/^(CLUSTERDOWN|READONLY|MASTERDOWN|LOADING|TRYAGAIN|NOREPLICAS|MOVED|ASK)\b/.test(message)) return true;
  return /enableOfflineQueue|Connection is closed|Command timed out|ECONNREFUSED|MaxRetriesPerRequest|Stream isn't writeable|ETIMEDOUT|ECONNRESET|Too many Cluster redirections|Failed to refresh slots cache|None of startup nodes is available|Cluster isn't ready|All sentinels are unreachable/i.test(
    message,
  );
}

/** Builds keys under the service's prefix: `key('perm', userId)` → `user_service:perm:<id>`. */
export const keyMaker =
  (prefix: string) =>
  (...parts: string[]): string =>
    `${prefix}${parts.join(':')}`;
