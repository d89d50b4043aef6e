// The operators' CLI: create or promote an admin (password from stdin), assign and remove roles;
// each change reaches the api's permission cache at once.
import { execFileSync, spawnSync } from 'node:child_process';
import { call, startTestApp, type TestApp } from '../helpers/app';
import { operatorSignIn, signedInUser } from '../helpers/auth';
import { ROOT } from '../helpers/env';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

const env = () => ({
  PATH: process.env.PATH,
  DATABASE_URL: t.config.database.url,
  REDIS_KEY_PREFIX: t.config.redis.keyPrefix,
  PASSWORD_BCRYPT_COST: '4',
  JWT_KEYS_DIR: t.config.jwt.keysDir,
  LOCAL_KMS_KEY_PATH: t.config.kms.keyPath,
});
const cli = (args: string[], input?: string) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'scripts/cli.ts', ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: env(),
    input,
    timeout: 30_000,
  });

test('create-admin creates an active, verified admin whose password came from stdin', async () => {
  const password = 'Operator-Passphrase-2026!';
  const r = cli(['create-admin', '--email', 'ops@example.com', '--name', 'Ops', '--password-stdin'], `${password}\n`);
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/^created admin: ops@example.com \(user id [0-9a-f-]{36}\)/);
  expect(r.stdout + r.stderr).not.toContain(password);
  const user = (await t.context.db('users').where({ email: 'ops@example.com' }).first())!;
  expect(user).toMatchObject({ status: 'active', email_verified: true });
  const { cookie } = await operatorSignIn(t.url, { id: user.id, email: 'ops@example.com', password });
  const board = await call(`${t.url}/admin/queues`, { headers: { Cookie: cookie! } });
  expect(board.status).toBe(200);
});

test('create-admin refuses a weak password, naming the rule', () => {
  const r = cli(['create-admin', '--email', 'weak-ops@example.com', '--password-stdin'], 'password\n');
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(/password: must be at least 12 characters/);
});

test('promoting an existing user, and role changes, show in the permission check at once', async () => {
  const user = await signedInUser(t.context.db, t.url, { roles: ['viewer'] });
  const check = async (permission: string) =>
    (await call(`${t.url}/v1/authz/check`, { body: { permission }, headers: user.auth })).body.allowed;
  expect(await check('queues:admin')).toBe(false);
  expect(
    execFileSync(process.execPath, ['--import', 'tsx', 'scripts/cli.ts', 'create-admin', '--email', user.email], {
      cwd: ROOT,
      encoding: 'utf8',
      env: env(),
    }),
  ).toMatch(/^promoted to admin/);
  expect(await check('queues:admin')).toBe(true);
  expect(cli(['remove-role', '--email', user.email, '--role', 'admin']).stdout).toMatch(/role admin removed/);
  expect(await check('queues:admin')).toBe(false);
  expect(cli(['assign-role', '--email', user.email, '--role', 'trader']).stdout).toMatch(/role trader assigned/);
  expect(await check('orders:write')).toBe(true);
  expect(cli(['assign-role', '--email', user.email, '--role', 'nope']).status).toBe(1);
});
