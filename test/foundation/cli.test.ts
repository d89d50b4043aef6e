// The operators' CLI: create or promote an admin (password from stdin), assign and remove roles;
// each change reaches the api's permission cache at once.
import { call, startTestApp, type TestApp } from '../helpers/app';
import { operatorSignIn, signedInUser } from '../helpers/auth';
import { cliEnvironment, runCli } from '../helpers/cli';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

// The CLI talks to the app's own database, Redis (TEST_REDIS_URL when set) and prefixes.
const cli = (args: string[], input?: string) => runCli(args, { env: cliEnvironment(t), input });

test('create-admin creates an active, verified admin whose password came from stdin', async () => {
  const password = 'Operator-Passphrase-2026!';
  const r = await cli(['create-admin', '--email', 'ops@example.com', '--name', 'Ops', '--password-stdin'], `${password}\n`);
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/^created admin: ops@example.com \(user id [0-9a-f-]{36}\)/);
  expect(r.stdout + r.stderr).not.toContain(password);
  const user = (await t.context.db('users').where({ email: 'ops@example.com' }).first())!;
  expect(user).toMatchObject({ status: 'active', email_verified: true });
  const { cookie } = await operatorSignIn(t.url, { id: user.id, email: 'ops@example.com', password });
  const board = await call(`${t.url}/admin/queues`, { headers: { Cookie: cookie! } });
  expect(board.status).toBe(200);
});

test('create-admin refuses a weak password, naming the rule', async () => {
  const r = await cli(['create-admin', '--email', 'weak-ops@example.com', '--password-stdin'], 'password\n');
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(/password: must be at least 12 characters/);
});

test('promoting an existing user, and role changes, show in the permission check at once', async () => {
  const user = await signedInUser(t.context.db, t.url, { roles: ['viewer'] });
  const check = async (permission: string) =>
    (await call(`${t.url}/v1/authz/check`, { body: { permission }, headers: user.auth })).body.allowed;
  expect(await check('queues:admin')).toBe(false);
  expect((await cli(['create-admin', '--email', user.email])).stdout).toMatch(/^promoted to admin/);
  expect(await check('queues:admin')).toBe(true);
  expect((await cli(['remove-role', '--email', user.email, '--role', 'admin'])).stdout).toMatch(/role admin removed/);
  expect(await check('queues:admin')).toBe(false);
  expect((await cli(['assign-role', '--email', user.email, '--role', 'trader'])).stdout).toMatch(/role trader assigned/);
  expect(await check('orders:write')).toBe(true);
  expect((await cli(['assign-role', '--email', user.email, '--role', 'nope'])).status).toBe(1);
});
