// What every process entry point (api, worker, cli) does first and last: check that PostgreSQL and
// Redis answer, saying in one line what is wrong and what to do when they do not (not running,
// refusing our credentials, missing the database), and shut down in order.
import pg from 'pg';
import { Redis } from 'ioredis';
import type { Config } from './config';
import { KeyError } from './crypto/keys';
import { StartupError } from './errors';
import type { Logger } from './logger';
import { checkRedisWritable, createRedis, pingDatabase, waitForRedis } from './redis';

export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}

const START_POSTGRES = 'Start it (for example `pg_ctlcluster 15 main start` or `docker compose up -d postgres`) or set DATABASE_URL.';
const START_REDIS = 'Start it (for example `redis-server --daemonize yes` or `docker compose up -d redis`) or set REDIS_URL.';

async function connectPostgres(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
  } finally {
    await client.end().catch(() => undefined);
  }
}

const databaseOf = (url: URL) => decodeURIComponent(url.pathname.replace(/^\//, ''));
const userOf = (url: URL) => decodeURIComponent(url.username) || 'postgres';

/**
 * One line saying why PostgreSQL at `url` refused us. The server answered with an SQLSTATE when it
 * was reached and said no (authentication, role, database); anything else means it was not reached.
 */
function describePostgresFailure(url: string, err: Error): string {
  const at = `PostgreSQL at ${redactUrl(url)}`;
  const parsed = new URL(url);
  if (!(err instanceof pg.DatabaseError)) return `PostgreSQL is not reachable at ${redactUrl(url)} (${err.message}). ${START_POSTGRES}`;
  switch (err.code) {
    case '28P01':
      return `${at} refused the password of user "${userOf(parsed)}" (28P01): check the password in DATABASE_URL.`;
    case '28000':
      return `${at} refused user "${userOf(parsed)}" (28000: ${err.message}): check the user in DATABASE_URL and the server's pg_hba.conf.`;
    case '3D000':
      return `${at} has no database "${databaseOf(parsed)}" (3D000): create it (\`npm run cli -- migrate\` creates and migrates it) or set DATABASE_URL.`;
    default:
      return `${at} refused the connection (${err.code ?? 'no code'}: ${err.message}).`;
  }
}

/**
 * `undefined` when we can use the service's database. Processes that create it when missing
 * (`npm start`, the CLI's migrate) only need the server to let them into `postgres`, where they
 * create it from.
 */
async function checkPostgres(url: string, createsDatabase: boolean): Promise<string | undefined> {
  try {
    await connectPostgres(url);
    return undefined;
  } catch (err) {
    if (!(createsDatabase && err instanceof pg.DatabaseError && err.code === '3D000')) return describePostgresFailure(url, err as Error);
  }
  const admin = new URL(url);
  admin.pathname = '/postgres';
  return connectPostgres(admin.toString()).then(
    () => undefined,
    (err: Error) => describePostgresFailure(admin.toString(), err),
  );
}

/** Sentinel and cluster set-ups: `undefined` once the primary (or every slot) answers and takes writes. */
async function checkRedisTopology(settings: Config['redis']): Promise<string | undefined> {
  const { topology } = settings;
  const where =
    topology.kind === 'cluster'
      ? `Redis Cluster (REDIS_CLUSTER_NODES ${topology.nodes.map((n) => `${n.host}:${n.port}`).join(',')})`
      : `Redis primary "${topology.kind === 'sentinel' ? topology.masterName : ''}" through REDIS_SENTINELS`;
  const redis = createRedis({ redis: settings }, 'command', 'startup-check');
  try {
    await waitForRedis(redis, 5000);
    await checkRedisWritable(redis);
    return undefined;
  } catch (err) {
    return `${where} cannot be used (${(err as Error).message}).`;
  } finally {
    redis.disconnect();
  }
}

/** `undefined` when Redis answers in the database of the URL. */
async function checkRedis(url: string): Promise<string | undefined> {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 3000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  redis.on('error', () => undefined);
  let connected = false;
  try {
    await redis.connect();
    connected = true;
    await pingDatabase(redis);
    return undefined;
  } catch (err) {
    const message = (err as Error).message;
    if (!connected) return `Redis is not reachable at ${redactUrl(url)} (${message}). ${START_REDIS}`;
    const db = redis.options.db ?? 0;
    if (/DB index/i.test(message))
      return `Redis at ${redactUrl(url)} has no database ${db} (${message}): use a database index the server has (redis.conf \`databases\`, 16 by default: 0-15) or set REDIS_URL.`;
    return `Redis at ${redactUrl(url)} refused the connection (${message}).`;
  } finally {
    redis.disconnect();
  }
}

export interface DependencyNeeds {
  /** Check Redis too (default: true). */
  redis?: boolean;
  /** This process creates the database when it is missing (npm start, the CLI's migrate). */
  createsDatabase?: boolean;
}

/** One line per dependency that cannot be used, each naming the cause; empty when all answer. */
export async function checkDependencies(config: Pick<Config, 'database' | 'redis'>, needs: DependencyNeeds = {}): Promise<string[]> {
  const [postgres, redis] = await Promise.all([
    checkPostgres(config.database.url, needs.createsDatabase ?? false),
    needs.redis === false
      ? undefined
      : config.redis.topology.kind === 'single'
        ? checkRedis(config.redis.url)
        : checkRedisTopology(config.redis),
  ]);
  return [postgres, redis].filter((line): line is string => line !== undefined);
}

export async function exitUnlessDependencies(config: Config, needs: DependencyNeeds = {}): Promise<void> {
  const problems = await checkDependencies(config, needs);
  if (problems.length === 0) return;
  for (const line of problems) process.stderr.write(`${line}\n`);
  process.exit(1);
}

/**
 * For an entry point's `main().catch`: errors that explain themselves (a StartupError, a missing
 * key) are one line on stderr; anything else is a bug, printed with its stack. Exits 1 either way.
 */
export function exitOnStartupFailure(processName: string): (err: unknown) => never {
  return (err) => {
    const explained = err instanceof StartupError || err instanceof KeyError;
    process.stderr.write(explained ? `${err.message}\n` : `${processName} failed to start: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  };
}

/** Runs `steps` in order on SIGTERM/SIGINT; a second signal or the timeout forces the exit. */
export function onShutdown(logger: Logger, timeoutMs: number, steps: Array<[string, () => Promise<unknown>]>): void {
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      logger.error('shutdown took too long: forcing exit');
      process.exit(1);
    }, timeoutMs);
    force.unref();
    for (const [name, step] of steps) {
      try {
        await step();
      } catch (err) {
        logger.error({ err, step: name }, 'shutdown step failed');
      }
    }
    logger.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}
