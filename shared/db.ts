// knex + objection on PostgreSQL. Connection and statement timeouts keep a sick database from
// hanging a request: the caller gets an error (503) instead.
import knexFactory, { type Knex } from 'knex';
import { Model } from 'objection';
import path from 'node:path';
import pg from 'pg';
import type { Config } from './config';
import type { Logger } from './logger';

// int8 (bigserial sequences, counts) as numbers: our values stay far below 2^53.
pg.types.setTypeParser(20, (value) => Number.parseInt(value, 10));

export type Db = Knex;

export function createDb(config: Pick<Config, 'database'>, options: { statementTimeoutMs?: number; logger?: Logger } = {}): Db {
  const logger = options.logger;
  const db = knexFactory({
    client: 'pg',
    connection: {
      connectionString: config.database.url,
      connectionTimeoutMillis: 5000,
      statement_timeout: options.statementTimeoutMs ?? 15000,
      application_name: 'user_service',
    },
    pool: { min: config.database.poolMin, max: config.database.poolMax },
    acquireConnectionTimeout: config.database.acquireTimeoutMs,
    // Errors must not carry the SQL with its bound values (password hashes, emails) into logs.
    compileSqlOnError: false,
    // Pool warnings (a lost connection, say) go through pino rather than the console.
    ...(logger && {
      log: {
        warn: (message: unknown) => logger.warn({ message: String(message) }, 'knex'),
        error: (message: unknown) => logger.error({ message: String(message) }, 'knex'),
        deprecate: (message: unknown) => logger.debug({ message: String(message) }, 'knex'),
        debug: () => undefined,
      },
    }),
  });
  Model.knex(db);
  return db;
}

/** Where the compiled or TypeScript migrations are, whichever this process runs from. */
export function migrationSettings(): Knex.MigratorConfig {
  const extension = path.extname(__filename);
  return {
    directory: path.join(__dirname, '..', 'migrations'),
    loadExtensions: [extension],
    tableName: 'knex_migrations',
  };
}

export async function migrateLatest(db: Db): Promise<void> {
  await db.migrate.latest(migrationSettings());
}

/** Creates the database named in the URL when it does not exist yet (connecting to `postgres`). */
export async function ensureDatabase(url: string): Promise<boolean> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.replace(/^\//, ''));
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString(), connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount) return false;
    await client.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
    return true;
  } catch (err) {
    // Another process created it between our check and our CREATE.
    if ((err as { code?: string }).code === '42P04') return false;
    throw err;
  } finally {
    await client.end();
  }
}

/** True when the error means PostgreSQL cannot be reached or is not answering in time. */
export function isDatabaseUnavailable(err: unknown): boolean {
  const e = err as { code?: string; name?: string; message?: string };
  if (e?.name === 'KnexTimeoutError') return true;
  if (
    e?.code &&
    [
      'ECONNREFUSED',
      'ECONNRESET',
      'ETIMEDOUT',
      'EPIPE',
      'ENOTFOUND',
      '57P01',
      '57P03',
      '57014',
      '08006',
      '08001',
      '08003',
      '53300',
    ].includes(e.code)
  )
    return true;
  return /Connection terminated|connect ECONNREFUSED|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(
    e?.message ?? '',
  );
}
