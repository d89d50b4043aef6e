// Service principals: created by the CLI, they exchange client credentials for a short access
// token (no session, no refresh token) and may check any user's permissions.
import { call, startTestApp, type TestApp } from '../helpers/app';
import { signedInUser } from '../helpers/auth';
import { cliEnvironment, runCli } from '../helpers/cli';

let t: TestApp;
let clientId: string;
let clientSecret: string;
beforeAll(async () => {
  t = await startTestApp();
  const created = await runCli(['create-service', '--name', 'ticker-service'], { env: cliEnvironment(t) });
  if (created.status !== 0) throw new Error(`create-service failed: ${created.stderr}`);
  const out = created.stdout;
  clientId = /client_id=(\S+)/.exec(out)![1];
  clientSecret = /client_secret=(\S+)/.exec(out)![1];
});
afterAll(() => t.close());

test('the CLI stores only a hash of the secret', async () => {
  const row = await t.context.db('users').where({ id: clientId }).first();
  expect(row).toMatchObject({ kind: 'service', status: 'active' });
  expect(JSON.stringify(row)).not.toContain(clientSecret);
});

test("client credentials give a 15-minute token that checks any user's permissions", async () => {
  const r = await call(`${t.url}/v1/auth/service-token`, { body: { client_id: clientId, client_secret: clientSecret } });
  expect(r.status).toBe(200);
  expect(r.body).toEqual({ access_token: expect.any(String), token_type: 'Bearer', expires_in: 900 });
  expect(r.body).not.toHaveProperty('refresh_token');
  const claims = JSON.parse(Buffer.from(r.body.access_token.split('.')[1], 'base64url').toString());
  expect(claims).toMatchObject({ sub: clientId, roles: ['service'], amr: ['service'] });
  expect(claims).not.toHaveProperty('sid');

  const user = await signedInUser(t.context.db, t.url, { roles: ['viewer'] });
  const auth = { Authorization: `Bearer ${r.body.access_token}` };
  expect(
    (await call(`${t.url}/v1/authz/check`, { body: { permission: 'market_data:read', user_id: user.id }, headers: auth })).body,
  ).toEqual({ allowed: true, permission: 'market_data:read', user_id: user.id });
  expect(
    (await call(`${t.url}/v1/authz/check`, { body: { permission: 'orders:write', user_id: user.id }, headers: auth })).body.allowed,
  ).toBe(false);
  // A service is not an admin.
  expect(
    (await call(`${t.url}/v1/authz/permissions`, { body: { user_id: user.id, permission: 'orders:write' }, headers: auth })).status,
  ).toBe(403);
});

test('wrong credentials get 401, and a service cannot sign in with a password', async () => {
  expect((await call(`${t.url}/v1/auth/service-token`, { body: { client_id: clientId, client_secret: `${clientSecret}x` } })).status).toBe(
    401,
  );
  expect(
    (
      await call(`${t.url}/v1/auth/service-token`, {
        body: { client_id: '00000000-0000-4000-8000-000000000000', client_secret: clientSecret },
      })
    ).status,
  ).toBe(401);
  const user = await signedInUser(t.context.db, t.url);
  expect((await call(`${t.url}/v1/auth/service-token`, { body: { client_id: user.id, client_secret: user.password } })).status).toBe(401);
  expect(
    (await call(`${t.url}/v1/auth/login`, { body: { email: 'ticker-service@services.invalid', password: clientSecret } })).status,
  ).toBe(401);
});
