// The CLI as a command line: every command's --help prints its usage and never acts (given the
// arguments that would make it act), bad options are one line and exit 2, destructive commands
// need --yes, and the errors the service raises are one line and exit 1. "Changes nothing" is
// checked on a database where each command, run for real, would change something: a pending
// migration, a user to promote, an envelope wrapped under the previous master key, and a keys
// folder without a signing pair.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { knex as knexFactory, type Knex } from 'knex';
import { createTestDatabase, dropTestDatabase, testEnvironment } from '../helpers/app';
import { runCli, type CliResult } from '../helpers/cli';
import { REDIS_CLUSTER_NODES, REDIS_URL } from '../helpers/env';
import { freePort } from '../helpers/processes';
import { createUser } from '../helpers/users';
import { migrationSettings } from '../../shared/db';
import { createLocalKms } from '../../shared/crypto/kms';
import { writeEmail } from '../../shared/email/outbox';

jest.setTimeout(120_000);

const COMMANDS = [
  'migrate',
  'migrate:down',
  'migrate:status',
  'keys',
  'kms:rewrap',
  'create-admin',
  'create-service',
  'disable-service',
  'enable-service',
  'rotate-service-secret',
  'assign-role',
  'remove-role',
];

const SERVICE_ID = '5e7a1c2b-0d4f-4b6a-9c3e-1f2a3b4c5d6e';
const DISABLED_SERVICE_ID = '6f8b2d3c-1e5a-4c7b-8d4f-2a3b4c5d6e7f';

let database: string;
let db: Knex;
let keysDir: string;
let env: Record<string, string>;

beforeAll(async () => {
  database = await createTestDatabase();
  const base = testEnvironment(database);
  db = knexFactory({ client: 'pg', connection: base.DATABASE_URL, pool: { min: 0, max: 2 } });
  // The last migration pending: `migrate` would apply it.
  await db.migrate.down(migrationSettings());
  // A user with a role: assign-role and remove-role, and create-admin's promotion, would change it.
  await createUser(db, { email: 'member@example.com', roles: ['trader'] });
  // Service principals, one active and one disabled: the service commands would change them.
  await db('users').insert([
    { id: SERVICE_ID, email: 'help-active@services.invalid', name: 'help-active', kind: 'service', status: 'active', email_verified: true },
    {
      id: DISABLED_SERVICE_ID,
      email: 'help-off@services.invalid',
      name: 'help-off',
      kind: 'service',
      status: 'suspended',
      email_verified: true,
    },
  ]);
  // Master keys A (previous) and B (current), and no signing pair: `keys` would create one, and
  // `kms:rewrap` would re-wrap the envelope written under A.
  keysDir = fs.mkdtempSync(path.join(os.tmpdir(), 'us-cli-usage-'));
  const [previous, current] = ['a.key', 'b.key'].map((file) => path.join(keysDir, file));
  for (const file of [previous, current]) fs.writeFileSync(file, crypto.randomBytes(32).toString('hex'), { mode: 0o600 });
  const kmsA = createLocalKms({ kms: { provider: 'local', keyPath: previous, previousKeyPaths: [] } });
  await db.transaction((trx) => writeEmail(trx, kmsA, { template: 'mfa_disabled', to: 'member@example.com', params: { name: 'M' } }));
  env = {
    PATH: process.env.PATH!,
    ...base,
    JWT_KEYS_DIR: path.join(keysDir, 'jwt'),
    LOCAL_KMS_KEY_PATH: current,
    LOCAL_KMS_PREVIOUS_KEY_PATHS: previous,
    LOG_LEVEL: 'warn',
  };
});

afterAll(async () => {
  await db?.destroy();
  if (database) await dropTestDatabase(database);
  if (keysDir) fs.rmSync(keysDir, { recursive: true, force: true });
});

/** Row counts the issue names, a digest of every table's content, and the keys folder's files with their mtimes. */
async function snapshot() {
  const count = async (table: string) => Number((await db(table).count<{ n: number }[]>({ n: '*' }))[0].n);
  const tables: string[] = await db('pg_tables').where({ schemaname: 'public' }).orderBy('tablename').pluck('tablename');
  const digests: Record<string, string> = {};
  for (const table of tables) {
    const { rows } = await db.raw<{ rows: { d: string }[] }>(
      `SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) AS d FROM ?? t`,
      [table],
    );
    digests[table] = rows[0].d;
  }
  const files = (fs.readdirSync(keysDir, { recursive: true }) as string[])
    .sort()
    .map((file) => `${file} ${fs.statSync(path.join(keysDir, file)).mtimeMs}`);
  return {
    counts: { knex_migrations: await count('knex_migrations'), users: await count('users'), user_roles: await count('user_roles') },
    digests,
    files,
  };
}

/** Exit `status` and one line on stderr matching `line`, nothing on stdout, no stack trace. */
function oneLine(r: CliResult, status: number, line: RegExp): void {
  expect({ status: r.status, stdout: r.stdout }).toEqual({ status, stdout: '' });
  expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(line)]);
  expect(r.stderr).not.toMatch(/^\s+at /m);
}

// Arguments with which each command would act.
const ACTING: Record<string, { args: string[]; input?: string }> = {
  migrate: { args: [] },
  'migrate:down': { args: ['--yes'] },
  'migrate:status': { args: [] },
  keys: { args: [] },
  'kms:rewrap': { args: ['--yes'] },
  'create-admin': { args: ['--email', 'new-admin@example.com', '--password-stdin'], input: 'Help-Never-Acts-2026!' },
  'create-service': { args: ['--name', 'help-service'] },
  'disable-service': { args: ['--client-id', SERVICE_ID] },
  'enable-service': { args: ['--client-id', DISABLED_SERVICE_ID] },
  'rotate-service-secret': { args: ['--client-id', SERVICE_ID] },
  'assign-role': { args: ['--email', 'member@example.com', '--role', 'admin'] },
  'remove-role': { args: ['--email', 'member@example.com', '--role', 'trader'] },
};

test('help lists every command, one line each', async () => {
  const r = await runCli(['help'], { env });
  expect(r.status).toBe(0);
  for (const name of COMMANDS) expect(r.stdout).toMatch(new RegExp(`^ {2}${name} +\\S.*$`, 'm'));
  expect(r.stdout.match(/^ {2}\S+ +\S/gm)).toHaveLength(COMMANDS.length);
});

test.each(COMMANDS)('%s --help (and -h) prints its usage, exits 0 and changes nothing', async (name) => {
  const before = await snapshot();
  const { args, input } = ACTING[name];
  for (const help of ['--help', '-h']) {
    const r = await runCli([name, ...args, help], { env, input });
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    expect(r.stdout).toMatch(new RegExp(`^Usage: npm run cli -- ${name}\\b`));
    expect(r.stdout).toMatch(/^ {2}-h, --help +show this help and change nothing$/m);
  }
  expect(await snapshot()).toEqual(before);
});

test('--help needs neither a valid configuration nor PostgreSQL nor Redis', async () => {
  const nowhere = `127.0.0.1:${await freePort()}`;
  const broken = { ...env, PORT: 'not-a-port', DATABASE_URL: `postgresql://postgres@${nowhere}/x`, REDIS_URL: `redis://${nowhere}/0` };
  for (const name of ['migrate:down', 'kms:rewrap', 'keys']) {
    const r = await runCli([name, '--help'], { env: broken });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^Usage: npm run cli -- ${name}`));
  }
});

test.each([
  [['migrate', '--bogus'], /^cli: migrate: Unknown option '--bogus' \(see `npm run cli -- migrate --help`\)$/],
  [
    ['create-admin', '--email'],
    /^cli: create-admin: Option '--email <value>' argument missing \(see `npm run cli -- create-admin --help`\)$/,
  ],
  [['create-admin', '--name', 'Ops'], /^cli: create-admin: --email EMAIL is required \(see `npm run cli -- create-admin --help`\)$/],
  [['assign-role', '--email', 'member@example.com'], /^cli: assign-role: --role ROLE is required \(see /],
  [['keys', 'now'], /^cli: keys: Unexpected argument 'now' \(see `npm run cli -- keys --help`\)$/],
  [['migrate:down', '--yes=please'], /^cli: migrate:down: Option '--yes' does not take an argument \(see /],
  [['create-role'], /^cli: unknown command "create-role" \(see `npm run cli -- help`\)$/],
])('%j: one line, exit 2, nothing changed', async (args, line) => {
  const before = await snapshot();
  oneLine(await runCli(args, { env }), 2, line);
  expect(await snapshot()).toEqual(before);
});

test.each([
  [
    'migrate:down',
    /^cli: migrate:down: would roll back every migration of postgresql:\/\/.*\/us_test_\w+, dropping every table and all its data; run it again with --yes to do it/,
  ],
  [
    'kms:rewrap',
    /^cli: kms:rewrap: would re-wrap every stored data key in postgresql:\/\/.* under the master key .*b\.key.*; run it again with --yes/,
  ],
])('%s without --yes says what it would do, exits 2 and changes nothing', async (name, line) => {
  const before = await snapshot();
  oneLine(await runCli([name], { env }), 2, line);
  expect(await snapshot()).toEqual(before);
});

describe('errors the service raises: one line, exit 1', () => {
  test('a refusal of the service (AppError)', async () => {
    const r = await runCli(['create-admin', '--email', 'weak@example.com', '--password-stdin'], { env, input: 'short' });
    oneLine(
      r,
      1,
      /^cli: create-admin: The password does not meet the password policy \(password: must be at least 12 characters long; .*\)$/,
    );
  });

  test('a bad configuration (ConfigError), every problem on the line', async () => {
    const r = await runCli(['migrate:status'], { env: { ...env, PORT: 'not-a-port', RATELIMIT_LOGIN_ATTEMPTS: '0' } });
    oneLine(r, 1, /^cli: migrate:status: invalid configuration: PORT: must be integer; RATELIMIT_LOGIN_ATTEMPTS: must be >= 1$/);
  });

  test('PostgreSQL that cannot be reached', async () => {
    const r = await runCli(['migrate:status'], { env: { ...env, DATABASE_URL: `postgresql://postgres@127.0.0.1:${await freePort()}/x` } });
    oneLine(r, 1, /^cli: migrate:status: PostgreSQL is not reachable at .*ECONNREFUSED.*or set DATABASE_URL\.$/);
  });

  // Not on a Redis Cluster, which has database 0 only.
  (REDIS_CLUSTER_NODES ? test.skip : test)('a Redis database the server does not have, for a command that uses Redis', async () => {
    const url = new URL(REDIS_URL);
    url.pathname = '/99';
    const r = await runCli(['assign-role', '--email', 'member@example.com', '--role', 'viewer'], {
      env: { ...env, REDIS_URL: url.toString() },
    });
    oneLine(r, 1, /^cli: assign-role: Redis at redis:\/\/.*\/99 has no database 99 \(ERR DB index is out of range\)/);
  });

  test('a missing master key (KeyError)', async () => {
    const r = await runCli(['kms:rewrap', '--yes'], { env: { ...env, LOCAL_KMS_KEY_PATH: path.join(keysDir, 'missing.key') } });
    oneLine(r, 1, /^cli: kms:rewrap: .*missing\.key/);
  });
});

// Last: it drops and rebuilds the schema the other tests look at.
test('with --yes they act: kms:rewrap re-wraps, migrate:down drops everything, migrate builds it again', async () => {
  const before = await snapshot();
  const rewrap = await runCli(['kms:rewrap', '--yes'], { env });
  expect(rewrap.stdout).toBe('re-wrapped 1 envelopes (0 already under the current key)\n');
  expect((await snapshot()).digests.email_messages).not.toBe(before.digests.email_messages);

  const down = await runCli(['migrate:down', '--yes'], { env });
  expect(down.stdout).toBe(`reverted ${before.counts.knex_migrations} migrations\n`);
  expect(await db('pg_tables').where({ schemaname: 'public' }).whereNot('tablename', 'like', 'knex_%').pluck('tablename')).toEqual([]);
  const up = await runCli(['migrate'], { env });
  expect(up.stdout).toMatch(/^applied 20261128000001_users_and_access, /);
});
