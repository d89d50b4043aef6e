// Start-up failures name their real cause in one line on stderr and exit 1, without a stack trace,
// whichever process meets them (api, worker, `npm start`'s supervisor, CLI): a port in use;
// PostgreSQL refusing our password, our user or a missing database, told apart from a PostgreSQL
// that is not running; a Redis database index the server does not have. And a running api's
// readiness reports Redis down when its connection cannot select its database.
// PostgreSQL's refusals come from a cluster of this file's own (DESIGN.md, "Fault tests"), whose
// pg_hba.conf asks one role for a password; the shared server trusts every local connection.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { call, createTestDatabase, dropTestDatabase, eventually, startTestApp, testEnvironment } from '../helpers/app';
import { runCli, runScript, type CliResult } from '../helpers/cli';
import { REDIS_CLUSTER_NODES, REDIS_URL } from '../helpers/env';
import { freePort, startPostgres, type OwnPostgres } from '../helpers/processes';

jest.setTimeout(120_000);

let database: string;
let ownPg: OwnPostgres;

const PASSWORD = 'the-right-password';

beforeAll(async () => {
  database = await createTestDatabase();
  ownPg = await startPostgres();
  const admin = new pg.Client({ connectionString: ownPg.url });
  await admin.connect();
  try {
    await admin.query(`CREATE ROLE app LOGIN PASSWORD '${PASSWORD}'`);
    // `app` must give its password; everyone else is trusted (so a role that does not exist is
    // refused as such, not as a wrong password).
    fs.writeFileSync(
      path.join(ownPg.dataDir, 'pg_hba.conf'),
      ['local all all trust', 'host all app 127.0.0.1/32 scram-sha-256', 'host all all 127.0.0.1/32 trust', ''].join('\n'),
    );
    await admin.query('SELECT pg_reload_conf()');
  } finally {
    await admin.end();
  }
  await eventually(async () => (await refusal(urlOf(ownPg.url, { user: 'app', password: 'wrong' }))) === '28P01');
});

afterAll(async () => {
  await ownPg?.close();
  if (database) await dropTestDatabase(database);
});

/** The SQLSTATE with which PostgreSQL refuses a connection to `url` (undefined when it accepts). */
async function refusal(url: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: url });
  try {
    await client.connect();
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  } finally {
    await client.end().catch(() => undefined);
  }
}

function urlOf(base: string, parts: { user?: string; password?: string; database?: string }): string {
  const url = new URL(base);
  if (parts.user) url.username = parts.user;
  if (parts.password) url.password = parts.password;
  if (parts.database) url.pathname = `/${parts.database}`;
  return url.toString();
}

/** The environment of a process of this file's: the shared servers and a migrated database, unless overridden. */
const envWith = (overrides: Record<string, string> = {}) => ({
  PATH: process.env.PATH!,
  ...testEnvironment(database),
  LOG_LEVEL: 'warn',
  ...overrides,
});

/** Exit 1 and exactly one line on stderr, matching `line`; nothing that looks like a stack trace anywhere. */
function failsWithOneLine(r: CliResult, line: RegExp): string {
  expect({ status: r.status, signal: r.signal }).toEqual({ status: 1, signal: null });
  const lines = r.stderr.trim().split('\n');
  expect(lines).toEqual([expect.stringMatching(line)]);
  expect(r.stdout + r.stderr).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
  return lines[0];
}

describe('a port in use', () => {
  let occupier: net.Server;
  let port: number;
  beforeAll(async () => {
    occupier = net.createServer();
    await new Promise<void>((resolve) => occupier.listen(0, '127.0.0.1', resolve));
    port = (occupier.address() as net.AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => occupier.close(() => resolve())));

  test.each([
    ['the api', 'api/server.ts'],
    ["npm start's supervisor (api and worker)", 'scripts/start.ts'],
  ])('%s: "port N is in use", exit 1', async (_name, script) => {
    const r = await runScript(script, [], { env: envWith({ PORT: String(port), HOST: '127.0.0.1' }) });
    const line = failsWithOneLine(r, /^port \d+ is in use/);
    expect(line).toBe(`port ${port} is in use (EADDRINUSE): stop the other process or set PORT`);
  });
});

describe('PostgreSQL refuses us, or is not there', () => {
  test('a wrong password (28P01), named as such and never printed (CLI)', async () => {
    const url = urlOf(ownPg.url, { user: 'app', password: 'wrong-secret' });
    const r = await runCli(['migrate:status'], { env: envWith({ DATABASE_URL: url }) });
    const line = failsWithOneLine(r, /refused the password of user "app" \(28P01\): check the password in DATABASE_URL/);
    expect(line).toMatch(/^cli: migrate:status: PostgreSQL at postgresql:\/\/app:\*\*\*@127\.0\.0\.1:\d+\/postgres /);
    expect(r.stdout + r.stderr).not.toContain('wrong-secret');
  });

  test('a user the server does not know (28000) (worker)', async () => {
    const url = urlOf(ownPg.url, { user: 'ghost' });
    const r = await runScript('workers/worker.ts', [], { env: envWith({ DATABASE_URL: url }) });
    failsWithOneLine(
      r,
      /refused user "ghost" \(28000: role "ghost" does not exist\): check the user in DATABASE_URL and the server's pg_hba.conf/,
    );
  });

  test('a database that does not exist (3D000), for a process that does not create it (api)', async () => {
    const url = urlOf(ownPg.url, { database: 'nowhere' });
    const r = await runScript('api/server.ts', [], { env: envWith({ DATABASE_URL: url, PORT: '0' }) });
    failsWithOneLine(r, /^PostgreSQL at .* has no database "nowhere" \(3D000\): create it .*or set DATABASE_URL\.$/);
  });

  test('a server that is not running: "not reachable", with how to start it (CLI)', async () => {
    const url = `postgresql://postgres@127.0.0.1:${await freePort()}/user_service`;
    const r = await runCli(['migrate'], { env: envWith({ DATABASE_URL: url }) });
    failsWithOneLine(r, /^cli: migrate: PostgreSQL is not reachable at .*ECONNREFUSED.*Start it .*or set DATABASE_URL\.$/);
  });
});

// A cluster has database 0 only (the configuration refuses another index with it): these do not
// apply to the run on a Redis Cluster.
const singleRedisOnly = REDIS_CLUSTER_NODES ? describe.skip : describe;

singleRedisOnly('a Redis database index the server does not have', () => {
  const outOfRange = () => {
    const url = new URL(REDIS_URL);
    url.pathname = '/99';
    return url.toString();
  };

  test.each([
    ['the worker', 'workers/worker.ts'],
    ['the api', 'api/server.ts'],
  ])('%s stops at start: one line, exit 1', async (_name, script) => {
    const r = await runScript(script, [], { env: envWith({ REDIS_URL: outOfRange(), PORT: '0' }) });
    failsWithOneLine(r, /^Redis at redis:\/\/.*\/99 has no database 99 \(ERR DB index is out of range\): .*or set REDIS_URL\.$/);
  });

  test('a running api reports Redis down in /health/ready when its connection cannot select the database', async () => {
    const t = await startTestApp({ REDIS_URL: outOfRange() });
    try {
      const r = await call(`${t.url}/health/ready`);
      expect(r.status).toBe(503);
      expect(r.body).toEqual({ status: 'unavailable', checks: { database: 'ok', redis: 'down' } });
    } finally {
      await t.close();
    }
  });
});
