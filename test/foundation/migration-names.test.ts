// Migrations have one name whoever runs them: the compiled service (`dist/`, as `npm start` and the
// Docker image run it) and the CLI under tsx share a database, including databases recorded before
// the names lost their file's extension (`.js` by npm start, `.ts` by the CLI).
// The compiled CLI is the one `npm test` builds with `tsc` before Jest starts.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { createTestDatabase, dropTestDatabase, eventually, testEnvironment } from '../helpers/app';
import { runCli, type CliResult } from '../helpers/cli';
import { databaseUrl, REDIS_URL, ROOT } from '../helpers/env';

jest.setTimeout(120_000);

const MIGRATIONS = fs
  .readdirSync(path.join(ROOT, 'migrations'))
  .filter((file) => file.endsWith('.ts'))
  .map((file) => file.replace(/\.ts$/, ''))
  .sort();

const databases: string[] = [];
const prefixes: string[] = [];

afterAll(async () => {
  for (const name of databases) await dropTestDatabase(name);
  const redis = new Redis(REDIS_URL);
  try {
    for (const prefix of prefixes) {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length) await redis.unlink(...keys);
    }
  } finally {
    redis.disconnect();
  }
});

/** The environment of the CLI for `database`: its own Redis prefix, the test run's keys. */
function envFor(database: string): Record<string, string> {
  const env: Record<string, string> = { PATH: process.env.PATH!, ...testEnvironment(database), LOG_LEVEL: 'warn' };
  prefixes.push(env.REDIS_KEY_PREFIX);
  return env;
}

async function query<T extends pg.QueryResultRow>(database: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: databaseUrl(database) });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

const recordedNames = async (database: string) =>
  (await query<{ name: string }>(database, 'SELECT name FROM knex_migrations ORDER BY name')).map((r) => r.name);

/** A clone of the migrated template whose rows carry `extension`, as the old code recorded them. */
async function recordedWith(extension: '.js' | '.ts'): Promise<string> {
  const database = await createTestDatabase();
  databases.push(database);
  await query(database, `UPDATE knex_migrations SET name = name || '${extension}'`);
  expect(await recordedNames(database)).toEqual(MIGRATIONS.map((name) => `${name}${extension}`));
  return database;
}

/** A database name that does not exist yet (the migrator creates it). */
function freshDatabase(): string {
  const database = `us_test_${process.pid}_${crypto.randomBytes(4).toString('hex')}`;
  databases.push(database);
  return database;
}

const succeeded = (r: CliResult) => {
  if (r.status !== 0) throw new Error(`exit ${r.status ?? r.signal}\n${r.stdout}${r.stderr}`);
  return r;
};
const status = async (env: Record<string, string>, compiled: boolean) =>
  succeeded(await runCli(['migrate:status'], { env, compiled })).stdout;
const createAdmin = async (env: Record<string, string>, compiled: boolean) =>
  succeeded(
    await runCli(['create-admin', '--email', 'ops@example.com', '--password-stdin'], {
      env,
      compiled,
      input: 'Rename-Check-Passphrase-7!',
    }),
  ).stdout;
const allApplied = MIGRATIONS.map((name) => `applied  ${name}\n`).join('');

test.each([
  ['.js', 'the compiled service', 'the CLI under tsx', false],
  ['.ts', 'the CLI under tsx', 'the compiled CLI', true],
] as const)('a database whose names end in %s (recorded by %s) works with %s, and is repaired', async (extension, _by, _with, compiled) => {
  const database = await recordedWith(extension);
  const env = envFor(database);
  expect(await status(env, compiled)).toBe(allApplied);
  expect(await createAdmin(env, compiled)).toMatch(/^created admin: ops@example.com/);
  expect(await recordedNames(database)).toEqual(MIGRATIONS);
});

test.each([
  ['the compiled migrator', 'the CLI under tsx', true],
  ['the CLI under tsx', 'the compiled CLI', false],
] as const)('a database migrated by %s is used by %s', async (_by, _with, compiledFirst) => {
  const database = freshDatabase();
  const env = envFor(database);
  const migrated = succeeded(await runCli(['migrate'], { env, compiled: compiledFirst })).stdout;
  expect(migrated).toBe(`applied ${MIGRATIONS.join(', ')}\n`);
  expect(await status(env, !compiledFirst)).toBe(allApplied);
  expect(await createAdmin(env, !compiledFirst)).toMatch(/^created admin: ops@example.com/);
  expect(succeeded(await runCli(['migrate'], { env, compiled: !compiledFirst })).stdout).toBe('already up to date\n');
  expect(await recordedNames(database)).toEqual(MIGRATIONS);
});

test('two processes that start at once on an old database both migrate, and the names are repaired once', async () => {
  const database = await recordedWith('.js');
  const env = envFor(database);
  // Hold the table until both processes wait to rename, so that they really do it at the same time.
  const holder = new pg.Client({ connectionString: databaseUrl(database) });
  await holder.connect();
  try {
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE knex_migrations IN EXCLUSIVE MODE');
    const runs = Promise.all([runCli(['migrate'], { env }), runCli(['migrate'], { env, compiled: true })]);
    // Polled outside the holder's transaction: a transaction sees one snapshot of pg_stat_activity.
    const waiting = `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = '${database}' AND wait_event_type = 'Lock'`;
    await eventually(async () => (await query<{ n: number }>(database, waiting))[0].n === 2, { timeoutMs: 60_000, intervalMs: 100 });
    await holder.query('COMMIT');
    for (const run of await runs) expect(succeeded(run).stdout).toBe('already up to date\n');
  } finally {
    await holder.end();
  }
  expect(await recordedNames(database)).toEqual(MIGRATIONS);
});
