// FEATURE_MFA_TOTP=false hides set-up, enable, step-up and regenerate (404), but users who already
// have MFA still sign in with it and can turn it off (DESIGN.md, "MFA challenge").
import { call, startTestApp, type TestApp } from '../helpers/app';
import { createUser } from '../helpers/users';
import { signedInUser } from '../helpers/auth';
import { newTotpSecret } from '../../shared/mfa/totp';
import { mfaSecretContext } from '../../shared/mfa/service';
import { Authenticator } from './rfc6238';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ FEATURE_MFA_TOTP: 'false' });
});
afterAll(async () => {
  await t.close();
});

test('set-up, enable, verify and regenerate answer 404', async () => {
  const user = await signedInUser(t.context.db, t.url);
  for (const [path, body] of [
    ['/v1/mfa/totp/setup', undefined],
    ['/v1/mfa/totp/enable', { code: '123456' }],
    ['/v1/mfa/totp/verify', { code: '123456' }],
    ['/v1/mfa/backup-codes/regenerate', { code: '123456' }],
  ] as const) {
    const r = await call(`${t.url}${path}`, { method: 'POST', body, headers: user.auth });
    expect([path, r.status]).toEqual([path, 404]);
  }
});

test('a user who already has MFA signs in with a code and can still turn MFA off', async () => {
  const user = await createUser(t.context.db);
  const secret = newTotpSecret();
  await t.context
    .db('users')
    .where({ id: user.id })
    .update({
      mfa_enabled: true,
      mfa_enabled_at: new Date(),
      mfa_secret_encrypted: t.context.kms.encrypt(secret, mfaSecretContext(user.id)),
    });
  const app = new Authenticator(secret);

  const login = await call(`${t.url}/v1/auth/login`, { body: { email: user.email, password: user.password } });
  expect(login.body.mfa_required).toBe(true);
  const verified = await call(`${t.url}/v1/auth/mfa/verify`, { body: { mfa_token: login.body.mfa_token, code: await app.code() } });
  expect(verified.status).toBe(200);

  const auth = { Authorization: `Bearer ${verified.body.access_token}` };
  const off = await call(`${t.url}/v1/mfa/totp/disable`, { body: { password: user.password, code: await app.code() }, headers: auth });
  expect(off.status).toBe(204);
  expect((await t.context.db('users').where({ id: user.id }).first())!.mfa_enabled).toBe(false);
});

test('the hidden endpoints are not in the OpenAPI document; the others are', async () => {
  const doc = await call(`${t.url}/openapi.json`);
  const paths = Object.keys(doc.body.paths);
  expect(paths).toEqual(expect.arrayContaining(['/v1/auth/mfa/verify', '/v1/mfa/totp/disable']));
  expect(paths.filter((p) => /setup|enable|totp\/verify|regenerate/.test(p))).toEqual([]);
});
