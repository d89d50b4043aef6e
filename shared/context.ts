// The one place that wires things: builds the database, Redis, queues, keys and KMS from config,
// for the api and for the workers. No container: each service later takes only what it needs.
import type { Knex } from 'knex';
import type { Redis } from './redis';
import type { Config } from './config';
import { createDb, createReplicaDb } from './db';
import { createReplicaReads, type ReplicaState } from './replica';
import { createRedis, keyMaker, waitForRedis } from './redis';
import { createQueues, closeQueues, type Queues } from './queues';
import { loadSigningKeys, reloadSigningKeys, type SigningKeys } from './crypto/keys';
import { createLocalKms, type Kms, type LocalKms } from './crypto/kms';
import { createAccessTokens, type AccessTokens } from './crypto/access-tokens';
import type { Logger } from './logger';
import { createPermissionCache, type PermissionCache } from './authz/cache';
import { limitBcrypt } from './users/passwords';
import { createLimits, type Limits } from './rate-limit';

export interface Context {
  config: Config;
  logger: Logger;
  db: Knex;
  /**
   * The read replica's pool, for reads that tolerate lag only (shared/replica.ts says which); the
   * same object as `db` when DATABASE_REPLICA_URL is empty. Read through `readReplica`, which falls
   * back to the primary when the replica is down.
   */
  dbReplica: Knex;
  /** Runs a read that tolerates lag on the replica, or on the primary when there is none or it is down. */
  readReplica<T>(query: (db: Knex) => Promise<T>): Promise<T>;
  /** For readiness: 'off' without a replica, otherwise whether it answers. */
  replicaState(): Promise<ReplicaState>;
  /** Fail-fast connection for request-time commands (rate limits, caches, short-lived tokens). */
  redis: Redis;
  queues: Queues;
  keys: SigningKeys;
  accessTokens: AccessTokens;
  kms: Kms;
  /** Each user's effective permissions, cached in Redis; invalidate after every change. */
  permissions: PermissionCache;
  /** Every rate limit, counted in Redis across all processes. */
  limits: Limits;
  /** Resolves once the Redis connections are up: fail-fast connections refuse commands before that. */
  ready(timeoutMs?: number): Promise<void>;
  /** Prefixes a Redis key with REDIS_KEY_PREFIX. */
  key(...parts: string[]): string;
  /**
   * Reads the signing keys folder and the KMS master key files again (every
   * JWT_KEYS_RELOAD_SECONDS, and on SIGHUP in the api and the worker).
   */
  reloadKeys(): void;
  close(): Promise<void>;
}

/**
 * Reloads the master keys and logs what changed: fingerprints and file names only (the reason a
 * file did not load never quotes it).
 */
function masterKeysReloader(kms: LocalKms, logger: Logger): () => void {
  let held = '';
  return () => {
    const result = kms.reload();
    for (const { file, reason } of result.failed)
      logger.warn({ file, err: reason }, 'master key file not loaded; the key last read from it stays in use');
    if (result.changed) logger.info({ current: result.currentKeyId, keys: result.keyIds }, 'master keys reloaded');
    if (result.heldInMemory.join() !== held && result.heldInMemory.length)
      logger.warn(
        { keys: result.heldInMemory },
        'master keys this process sealed with are in no key file: they open envelopes until it restarts; keep them in LOCAL_KMS_KEYS_DIR until kms:rewrap has run',
      );
    held = result.heldInMemory.join();
  };
}

export function createContext(config: Config, logger: Logger): Context {
  limitBcrypt(config.password.bcryptMaxConcurrency, config.password.bcryptMaxQueue);
  const keys = loadSigningKeys(config);
  const kms = createLocalKms(config);
  const reloadMasterKeys = masterKeysReloader(kms, logger);
  const db = createDb(config, { logger });
  // Beyond the statement timeout, a read still waiting on the replica is waiting on a hung host.
  const statementTimeoutMs = config.database.statementTimeoutSeconds * 1000;
  const replica = createReplicaReads(
    db,
    createReplicaDb(config, { logger }),
    logger,
    statementTimeoutMs ? statementTimeoutMs + 2000 : null,
  );
  const redis = createRedis(config, 'command');
  const queueConnection = createRedis(config, 'command', 'queues');
  const queues = createQueues(config, queueConnection, logger);
  const key = keyMaker(config.redis.keyPrefix);
  const reloadKeys = () => {
    try {
      if (reloadSigningKeys(keys, config))
        logger.info({ kids: keys.jwks.keys.map((k) => k.kid), signing: keys.signingKid }, 'signing keys reloaded');
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'signing keys not reloaded; the previous set stays in use');
    }
    reloadMasterKeys();
  };
  const keysTimer = config.jwt.keysReloadMs ? setInterval(reloadKeys, config.jwt.keysReloadMs).unref() : undefined;
  return {
    config,
    logger,
    db,
    dbReplica: replica.db,
    readReplica: (query) => replica.read(query),
    replicaState: () => replica.check(),
    redis,
    queues,
    keys,
    kms,
    accessTokens: createAccessTokens(config, keys),
    ready: async (timeoutMs = 5000) => {
      await Promise.all([waitForRedis(redis, timeoutMs), waitForRedis(queueConnection, timeoutMs)]);
    },
    key,
    reloadKeys,
    permissions: createPermissionCache(db, redis, key),
    // Keyed by the master key: a copy of Redis does not give away which addresses were tried. Read
    // at each use, so the counters follow a master key reloaded (and start afresh with it).
    limits: createLimits(config, redis, key, () => kms.deriveKey('rate-limit-keys')),
    async close() {
      clearInterval(keysTimer);
      await closeQueues(queues).catch(() => undefined);
      queueConnection.disconnect();
      redis.disconnect();
      // The replica before the primary: a read that found the replica down falls back to the primary.
      if (replica.db !== db) await replica.db.destroy();
      await db.destroy();
    },
  };
}
