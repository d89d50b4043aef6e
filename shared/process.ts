// What every process entry point (api, worker, cli) does first and last: check that PostgreSQL and
// Redis answer, saying in one line what to do when they do not, and shut down in order.
import pg from 'pg';
import { Redis } from 'ioredis';
import type { Config } from './config';
import type { Logger } from './logger';

export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}

async function reachPostgres(url: string): Promise<void> {
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString(), connectionTimeoutMillis: 3000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function reachRedis(url: string): Promise<void> {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 3000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    await redis.ping();
  } finally {
    redis.disconnect();
  }
}

/** Returns one line per dependency that cannot be reached; empty when both answer. */
export async function checkDependencies(config: Pick<Config, 'database' | 'redis'>): Promise<string[]> {
  const problems: string[] = [];
  await reachPostgres(config.database.url).catch((err: Error) => {
    problems.push(
      `PostgreSQL is not reachable at ${redactUrl(config.database.url)} (${err.message}). Start it (for example \`pg_ctlcluster 15 main start\` or \`docker compose up -d postgres\`) or set DATABASE_URL.`,
    );
  });
  await reachRedis(config.redis.url).catch((err: Error) => {
    problems.push(
      `Redis is not reachable at ${redactUrl(config.redis.url)} (${err.message}). Start it (for example \`redis-server --daemonize yes\` or \`docker compose up -d redis\`) or set REDIS_URL.`,
    );
  });
  return problems;
}

export async function exitUnlessDependencies(config: Config): Promise<void> {
  const problems = await checkDependencies(config);
  if (problems.length === 0) return;
  for (const line of problems) process.stderr.write(`${line}\n`);
  process.exit(1);
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
