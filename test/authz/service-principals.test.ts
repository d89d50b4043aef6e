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

test('a service token is refused on the endpoints for people, and changes nothing (red team #8)', async () => {
  const r = await call(`${t.url}/v1/auth/service-token`, { body: { client_id: clientId, client_secret: clientSecret } });
  const auth = { Authorization: `Bearer ${r.body.access_token}` };
  const before = await t.context.db('users').where({ id: clientId }).first();
  const events = await t.context.db('events').where({ user_id: clientId }).count({ n: '*' });
  const attempts: Array<[string, string, unknown?]> = [
    ['GET', '/v1/users/me'],
    ['PATCH', '/v1/users/me', { name: 'Renamed' }],
    ['DELETE', '/v1/users/me', { password: clientSecret }],
    ['POST', '/v1/users/change-password', { current_password: clientSecret, new_password: 'A-Human-Passphrase-2026' }],
    ['POST', '/v1/auth/logout', {}],
    ['GET', '/v1/auth/sessions'],
    ['DELETE', '/v1/auth/sessions/00000000-0000-4000-8000-000000000000'],
    ['POST', '/v1/mfa/totp/setup', {}],
    ['POST', '/v1/mfa/totp/verify', { code: '123456' }],
    ['POST', '/v1/mfa/totp/disable', { password: clientSecret, code: '123456' }],
  ];
  for (const [method, path, body] of attempts) {
    const answer = await call(`${t.url}${path}`, { method, headers: auth, ...(body !== undefined && { body }) });
    expect([method, path, answer.status, answer.body.type]).toEqual([method, path, 403, 'urn:user-service:problem:person_required']);
  }
  expect(await t.context.db('users').where({ id: clientId }).first()).toEqual(before);
  expect(await t.context.db('events').where({ user_id: clientId }).count({ n: '*' })).toEqual(events);
});

test('a disabled principal, or one whose secret was rotated, is refused at once; the new secret works (red team #12)', async () => {
  const tokenWith = async (secret: string) =>
    call(`${t.url}/v1/auth/service-token`, { body: { client_id: clientId, client_secret: secret } });
  const checkWith = (token: string) =>
    call(`${t.url}/v1/authz/check`, { body: { permission: 'market_data:read' }, headers: { Authorization: `Bearer ${token}` } });
  const before = (await tokenWith(clientSecret)).body.access_token as string;
  expect((await checkWith(before)).status).toBe(200);

  const disabled = await runCli(['disable-service', '--client-id', clientId], { env: cliEnvironment(t) });
  expect([disabled.status, disabled.stdout.trim()]).toEqual([0, `disabled service ${clientId}`]);
  expect((await checkWith(before)).status).toBe(401);
  expect((await tokenWith(clientSecret)).status).toBe(401);
  expect((await runCli(['enable-service', '--client-id', clientId], { env: cliEnvironment(t) })).status).toBe(0);
  expect((await checkWith(before)).status).toBe(200);

  const rotation = await runCli(['rotate-service-secret', '--client-id', clientId], { env: cliEnvironment(t) });
  expect(rotation.status).toBe(0);
  const rotated = /client_secret=(\S+)/.exec(rotation.stdout)![1];
  expect(rotated).not.toBe(clientSecret);
  expect((await checkWith(before)).status).toBe(401);
  expect((await tokenWith(clientSecret)).status).toBe(401);
  const after = await tokenWith(rotated);
  expect(after.status).toBe(200);
  expect((await checkWith(after.body.access_token)).status).toBe(200);
  const types = await t.context.db('events').where({ user_id: clientId }).orderBy('seq').pluck('type');
  expect(types).toEqual(expect.arrayContaining(['user.suspended', 'user.reactivated', 'service.secret_rotated']));
  clientSecret = rotated;
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
