// knex + objection on PostgreSQL. Connection and statement timeouts keep a sick database from
// hanging a request: the caller gets an error (503) instead. The statement timeout is the role's
// default in the database (set by `migrate`), not a startup parameter: PgBouncer in transaction
// mode refuses startup parameters it does not know, and ignoring them would drop the timeout.
import knexFactory, { type Knex } from 'knex';
import { Model } from 'objection';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import type { Config } from './config';
import type { Logger } from './logger';

// int8 (bigserial sequences, counts) as numbers: our values stay far below 2^53.
pg.types.setTypeParser(20, (value) => Number.parseInt(value, 10));

export type Db = Knex;

export function createDb(config: Pick<Config, 'database'>, options: { logger?: Logger } = {}): Db {
  const { url, poolMin, poolMax, acquireTimeoutMs } = config.database;
  const db = createKnex(url, { min: poolMin, max: poolMax }, acquireTimeoutMs, options.logger);
  Model.knex(db);
  return db;
}

/**
 * The pool of the read replica (DATABASE_REPLICA_URL), null when none is configured. Never bound to
 * objection's models: a model query is a read-then-write as often as not, and goes to the primary.
 */
export function createReplicaDb(config: Pick<Config, 'database'>, options: { logger?: Logger } = {}): Db | null {
  const { replica, poolMin, acquireTimeoutMs } = config.database;
  return replica && createKnex(replica.url, { min: poolMin, max: replica.poolMax }, acquireTimeoutMs, options.logger);
}

function createKnex(url: string, pool: { min: number; max: number }, acquireTimeoutMs: number, logger: Logger | undefined): Db {
  return knexFactory({
    client: 'pg',
    connection: {
      connectionString: url,
      connectionTimeoutMillis: 5000,
      // PgBouncer tracks application_name itself: the one startup parameter it passes on.
      application_name: 'user_service',
    },
    pool,
    acquireConnectionTimeout: acquireTimeoutMs,
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
}

/** The migration files next to this file's tree: `migrations/*.ts` under tsx and Jest, `dist/migrations/*.js` compiled. */
const MIGRATIONS_DIR = path.join(__dirname, '..', 'migrations');
const MIGRATIONS_TABLE = 'knex_migrations';

interface MigrationFile {
  name: string;
  file: string;
}

let migrationFiles: MigrationFile[] | undefined;

/** Listed once per process, in name order; the extension is that of the code this process runs. */
function listMigrationFiles(): MigrationFile[] {
  const extension = path.extname(__filename);
  migrationFiles ??= fs
    .readdirSync(MIGRATIONS_DIR)
    .filter((file) => file.endsWith(extension) && !file.endsWith(`.d${extension}`))
    .sort()
    .map((file) => ({ name: path.basename(file, extension), file: path.join(MIGRATIONS_DIR, file) }));
  return migrationFiles;
}

/**
 * One list of migrations, named the same whatever runs them. knex's default source names a
 * migration by its file name, extension included, so the compiled service recorded
 * `…_users_and_access.js` and the CLI under tsx looked for `…_users_and_access.ts`, each calling the
 * other's database corrupt. Here a migration is its base name; the file loaded is the one this
 * process can run.
 */
const migrationSource: Knex.MigrationSource<MigrationFile> = {
  getMigrations: () => Promise.resolve(listMigrationFiles()),
  getMigrationName: (migration) => migration.name,
  // Migrations are CommonJS modules found at run time; knex's own source loads them with require too.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  getMigration: (migration) => Promise.resolve(require(migration.file) as Knex.Migration),
};

export function migrationSettings(): Knex.MigratorConfig {
  return { migrationSource, tableName: MIGRATIONS_TABLE };
}

const RECORDED_EXTENSION = String.raw`\.(js|ts)$`;

/**
 * Databases migrated before migrations lost their extension recorded `….js` (npm start) or `….ts`
 * (the CLI): rename those rows to the base name. Idempotent, and one statement: a second process
 * starting at the same moment waits for the first one's row locks, then finds nothing left to
 * rename (PostgreSQL re-checks the condition of a row that changed while it waited).
 */
export async function normaliseMigrationNames(db: Db): Promise<number> {
  const { rows } = await db.raw<{ rows: { present: boolean }[] }>('SELECT to_regclass(?) IS NOT NULL AS present', [MIGRATIONS_TABLE]);
  if (!rows[0].present) return 0;
  return db(MIGRATIONS_TABLE)
    .whereRaw('name ~ ?', [RECORDED_EXTENSION])
    .update({ name: db.raw('regexp_replace(name, ?, ?)', [RECORDED_EXTENSION, '']) });
}

/**
 * Applies pending migrations, then the role's settings in this database; returns the migrations'
 * names.
 */
export async function migrateLatest(db: Db, config: Pick<Config, 'database'>): Promise<string[]> {
  await normaliseMigrationNames(db);
  const [, applied] = (await db.migrate.latest(migrationSettings())) as [number, string[]];
  await setStatementTimeout(db, config.database.statementTimeoutSeconds);
  return applied;
}

/**
 * Makes `seconds` the statement timeout of every later session of the current role in the
 * current database, whichever pooler they come through. A role may set its own defaults; only
 * this service's role in this database is touched (not psql sessions of other roles).
 */
export async function setStatementTimeout(db: Db, seconds: number): Promise<void> {
  const setting = `statement_timeout=${seconds}s`;
  await db.transaction(async (trx) => {
    // Two processes migrating at once would both write the same catalogue row ("tuple
    // concurrently updated"): one at a time, and only when it differs.
    await trx.raw('SELECT pg_advisory_xact_lock(hashtext(?))', ['user_service:statement_timeout']);
    const { rows } = await trx.raw<{ rows: { present: boolean }[] }>(
      `SELECT EXISTS (
         SELECT 1 FROM pg_db_role_setting s
         JOIN pg_database d ON d.oid = s.setdatabase AND d.datname = current_database()
         JOIN pg_roles r ON r.oid = s.setrole AND r.rolname = current_user
         WHERE ? = ANY (s.setconfig)) AS present`,
      [setting],
    );
    if (rows[0].present) return;
    await trx.raw(
      `DO $$ BEGIN EXECUTE format('ALTER ROLE %I IN DATABASE %I SET statement_timeout = %L', current_user, current_database(), '${seconds}s'); END $$`,
    );
  });
}

interface ServerSettings {
  statementTimeoutMs: number;
  /** max_connections − superuser_reserved_connections. */
  clientConnections: number;
  inRecovery: boolean;
}

async function serverSettings(db: Db): Promise<ServerSettings> {
  const { rows } = await db.raw<{ rows: { name: string; setting: string }[] }>(
    `SELECT name, setting FROM pg_settings WHERE name IN ('statement_timeout', 'max_connections', 'superuser_reserved_connections')
     UNION ALL SELECT 'in_recovery', pg_is_in_recovery()::int::text`,
  );
  const setting = (name: string) => Number(rows.find((row) => row.name === name)?.setting ?? 0);
  return {
    statementTimeoutMs: setting('statement_timeout'),
    clientConnections: setting('max_connections') - setting('superuser_reserved_connections'),
    inRecovery: setting('in_recovery') === 1,
  };
}

/**
 * At start-up, one warning line for each setting of the database that would hurt under load: a
 * statement timeout other than the configured one (the database was not migrated by this
 * version, or a pooler's role differs), and a connection budget that PostgreSQL cannot honour
 * (every process at its pool maximum would get "53300 too many clients").
 */
export async function checkDatabaseSettings(db: Db, config: Pick<Config, 'database'>, logger: Logger): Promise<void> {
  const settings = await serverSettings(db);
  const { statementTimeoutSeconds, processes, poolMax, reservedConnections } = config.database;
  if (settings.statementTimeoutMs !== statementTimeoutSeconds * 1000) {
    logger.warn(
      { statementTimeoutMs: settings.statementTimeoutMs, expectedMs: statementTimeoutSeconds * 1000 },
      "statement_timeout differs from DATABASE_STATEMENT_TIMEOUT_SECONDS: run `npm run cli -- migrate` (it sets the role's default in this database), or set it for the role PgBouncer connects as",
    );
  }
  const available = settings.clientConnections - reservedConnections;
  if (processes * poolMax > available) {
    logger.warn(
      { processes, poolMax, budget: processes * poolMax, available },
      'the connection budget exceeds what PostgreSQL allows: DATABASE_PROCESSES × (DATABASE_POOL_SIZE + DATABASE_MAX_OVERFLOW) must stay within max_connections − superuser_reserved_connections − DATABASE_RESERVED_CONNECTIONS (docs/scaling.md)',
    );
  }
}

/**
 * The same start-up check for the read replica, which has its own max_connections and so its own
 * budget. A replica that cannot be reached is a warning, never a reason not to start: its reads go
 * to the primary meanwhile (shared/replica.ts).
 */
export async function checkReplicaSettings(replica: Db | null, config: Pick<Config, 'database'>, logger: Logger): Promise<void> {
  if (!replica || !config.database.replica) return;
  let settings: ServerSettings;
  try {
    settings = await serverSettings(replica);
  } catch (err) {
    logger.warn(
      { error: (err as Error).message },
      'the read replica does not answer at start: reads that tolerate lag go to the primary until it does',
    );
    return;
  }
  if (!settings.inRecovery) {
    logger.warn('DATABASE_REPLICA_URL names a server that is not a standby (pg_is_in_recovery() is false): check that it is the replica');
  }
  const { processes, reservedConnections } = config.database;
  const { poolMax } = config.database.replica;
  const available = settings.clientConnections - reservedConnections;
  if (processes * poolMax > available) {
    logger.warn(
      { processes, poolMax, budget: processes * poolMax, available },
      "the replica's connection budget exceeds what it allows: DATABASE_PROCESSES × DATABASE_REPLICA_POOL_SIZE must stay within its max_connections − superuser_reserved_connections − DATABASE_RESERVED_CONNECTIONS (docs/scaling.md)",
    );
  }
}

/** Reverts every applied migration (drops every table); returns their names. */
export async function migrateDownAll(db: Db): Promise<string[]> {
  await normaliseMigrationNames(db);
  const [, reverted] = (await db.migrate.rollback(migrationSettings(), true)) as [number, string[]];
  return reverted;
}

/** Names of the applied and of the pending migrations. */
export async function migrationStatus(db: Db): Promise<{ applied: string[]; pending: string[] }> {
  await normaliseMigrationNames(db);
  const [done, pending] = (await db.migrate.list(migrationSettings())) as [{ name: string }[], MigrationFile[]];
  return { applied: done.map((m) => m.name), pending: pending.map((m) => m.name) };
}

/** False when the database of the URL does not exist (3D000); other failures are thrown. */
async function databaseExists(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return true;
  } catch (err) {
    if (err instanceof pg.DatabaseError && err.code === '3D000') return false;
    throw err;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Creates the database named in the URL when it does not exist yet, connecting to `postgres` for
 * that only: a role allowed into its own database alone needs nothing more.
 */
export async function ensureDatabase(url: string): Promise<boolean> {
  if (await databaseExists(url)) return false;
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

/** A unique index refused the row (23505): two writers raced, or the value is taken. */
export const isUniqueViolation = (err: unknown): boolean => (err as { code?: string } | null)?.code === '23505';

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
