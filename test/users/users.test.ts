// The user's own account: profile, changes (each bad field named, nothing changed), public
// profiles, and deletion.
import { call, eventually, startTestApp, type TestApp } from '../helpers/app';
import { createUser } from '../helpers/users';
import { login, signedInUser, streamEvents } from '../helpers/auth';
import { Authenticator } from '../mfa/rfc6238';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ RATELIMIT_REGISTER_ATTEMPTS: '100' });
  await t.startWorkers();
});
afterAll(() => t.close());

test('GET /v1/users/me has the profile, roles, effective permissions and masked trading accounts', async () => {
  const me = await signedInUser(t.context.db, t.url);
  await t.context.db('trading_accounts').insert({
    user_id: me.id,
    broker: 'kite',
    status: 'active',
    api_key_fingerprint: 'fp',
    api_key_masked: 'ab12****',
    credentials_encrypted: 'v1.secret-envelope.x.y',
    nickname: 'Main',
  });
  const r = await call(`${t.url}/v1/users/me`, { headers: me.auth });
  expect(r.status).toBe(200);
  expect(r.body).toMatchObject({
    id: me.id,
    email: me.email,
    email_verified: true,
    name: 'Test User',
    phone: null,
    timezone: 'UTC',
    locale: 'en',
    avatar_url: null,
    status: 'active',
    mfa_enabled: false,
    roles: ['trader'],
  });
  expect(r.body.permissions).toEqual(expect.arrayContaining(['orders:write', 'profile:read', 'trading_accounts:write']));
  expect(r.body.permissions).not.toContain('queues:admin');
  expect(r.body.trading_accounts).toEqual([
    expect.objectContaining({ broker: 'kite', nickname: 'Main', status: 'active', api_key_masked: 'ab12****' }),
  ]);
  expect(r.text).not.toContain('secret-envelope');
});

describe('PATCH /v1/users/me', () => {
  test('changes the allowed fields and emits user.updated with field names only', async () => {
    const me = await signedInUser(t.context.db, t.url);
    const r = await call(`${t.url}/v1/users/me`, {
      method: 'PATCH',
      body: {
        name: 'Priya Nair',
        phone: '+919812345678',
        timezone: 'Asia/Kolkata',
        locale: 'hi-IN',
        avatar_url: 'https://cdn.example/p.png',
      },
      headers: me.auth,
    });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      name: 'Priya Nair',
      phone: '+919812345678',
      timezone: 'Asia/Kolkata',
      locale: 'hi-IN',
      avatar_url: 'https://cdn.example/p.png',
    });
    const cleared = await call(`${t.url}/v1/users/me`, { method: 'PATCH', body: { phone: null }, headers: me.auth });
    expect(cleared.body.phone).toBeNull();
    const event = await eventually(async () =>
      (await streamEvents(t.context.redis, t.config.events.streamName)).find(
        (e) => e.type === 'user.updated' && e.payload.user_id === me.id,
      ),
    );
    expect(event.payload.data).toEqual({ fields: ['avatar_url', 'locale', 'name', 'phone', 'timezone'] });
    expect(event.raw).not.toContain('Priya');
    expect(event.raw).not.toContain('+919812345678');
  });

  test.each([
    ['name', ''],
    ['name', 'x'.repeat(101)],
    ['name', '   '],
    ['phone', '98123 45678'],
    ['phone', '+0123456789'],
    ['timezone', 'Asia/Atlantis'],
    ['timezone', 'not a zone'],
    ['locale', 'xx_YY_ZZ!'],
    ['avatar_url', 'http://cdn.example/p.png'],
    ['avatar_url', 'javascript:alert(1)'],
    ['email', 'new@example.com'],
    ['status', 'active'],
  ])('%s = %j is refused with a 400 naming it, and nothing changes', async (field, value) => {
    const me = await signedInUser(t.context.db, t.url);
    const before = await t.context.db('users').where({ id: me.id }).first();
    const r = await call(`${t.url}/v1/users/me`, { method: 'PATCH', body: { name: 'Still Valid', [field]: value }, headers: me.auth });
    expect(r.status).toBe(400);
    expect(r.headers.get('content-type')).toMatch(/problem\+json/);
    expect(r.body.errors.map((e: { field: string }) => e.field)).toEqual([field]);
    expect(await t.context.db('users').where({ id: me.id }).first()).toEqual(before);
  });

  test.each(['name', 'avatar_url'])('a NUL character in %s is a 400 naming the field, and changes nothing (red team #3)', async (field) => {
    const me = await signedInUser(t.context.db, t.url);
    const before = await t.context.db('users').where({ id: me.id }).first();
    const value = field === 'name' ? 'Asha\u0000Rao' : 'https://example.com/a\u0000.png';
    const r = await call(`${t.url}/v1/users/me`, { method: 'PATCH', body: { [field]: value }, headers: me.auth });
    expect(r.status).toBe(400);
    expect(r.body.errors).toEqual([{ field, message: expect.stringMatching(/NUL/) }]);
    expect(await t.context.db('users').where({ id: me.id }).first()).toEqual(before);
  });

  test('an empty change is refused', async () => {
    const me = await signedInUser(t.context.db, t.url);
    expect((await call(`${t.url}/v1/users/me`, { method: 'PATCH', body: {}, headers: me.auth })).status).toBe(400);
  });
});

test('public profiles show public fields only; 404 for unknown and deleted users', async () => {
  const me = await signedInUser(t.context.db, t.url);
  const other = await createUser(t.context.db);
  const r = await call(`${t.url}/v1/users/profile/${other.id}`, { headers: me.auth });
  expect(r.status).toBe(200);
  expect(Object.keys(r.body).sort()).toEqual(['avatar_url', 'created_at', 'id', 'name']);
  expect((await call(`${t.url}/v1/users/profile/00000000-0000-4000-8000-000000000000`, { headers: me.auth })).status).toBe(404);
  const gone = await createUser(t.context.db, { status: 'deleted' });
  expect((await call(`${t.url}/v1/users/profile/${gone.id}`, { headers: me.auth })).status).toBe(404);
});

describe('DELETE /v1/users/me', () => {
  test('needs the password', async () => {
    const me = await signedInUser(t.context.db, t.url);
    expect(
      (await call(`${t.url}/v1/users/me`, { method: 'DELETE', body: { password: 'Wrong-Password-1!' }, headers: me.auth })).status,
    ).toBe(401);
    expect((await call(`${t.url}/v1/users/me`, { method: 'DELETE', body: {}, headers: me.auth })).status).toBe(401);
    expect((await t.context.db('users').where({ id: me.id }).first())!.status).toBe('active');
  });

  test('wrong passwords are throttled per user like sign-ins: a stolen token is no password oracle', async () => {
    const me = await signedInUser(t.context.db, t.url);
    for (let i = 0; i < 5; i += 1) {
      expect(
        (await call(`${t.url}/v1/users/me`, { method: 'DELETE', body: { password: `Wrong-Password-${i}!` }, headers: me.auth })).status,
      ).toBe(401);
    }
    expect((await call(`${t.url}/v1/users/me`, { method: 'DELETE', body: { password: me.password }, headers: me.auth })).status).toBe(429);
  });

  test('ends every session, destroys trading credentials, refuses login, frees the email, and is on the stream', async () => {
    const user = await createUser(t.context.db);
    const a = await login(t.url, user);
    const b = await login(t.url, user);
    const [account] = await t.context
      .db('trading_accounts')
      .insert({
        user_id: user.id,
        broker: 'kite',
        status: 'active',
        api_key_fingerprint: 'fp2',
        api_key_masked: 'cd34****',
        credentials_encrypted: 'v1.k.wrapped.body',
      })
      .returning('id');

    const r = await call(`${t.url}/v1/users/me`, { method: 'DELETE', body: { password: user.password }, headers: a.auth });
    expect(r.status).toBe(204);
    expect((await call(`${t.url}/v1/users/me`, { headers: a.auth })).status).toBe(401);
    expect((await call(`${t.url}/v1/users/me`, { headers: b.auth })).status).toBe(401);
    expect((await call(`${t.url}/v1/auth/refresh`, { body: { refresh_token: b.refreshToken } })).status).toBe(401);
    const row = (await t.context.db('trading_accounts').where({ id: account.id }).first())!;
    expect(row.credentials_encrypted).toBeNull();
    expect(row.unlinked_at).not.toBeNull();
    const gone = (await t.context.db('users').where({ id: user.id }).first())!;
    expect(gone).toMatchObject({ status: 'deleted', name: 'Deleted user', password_hash: null, phone: null });
    expect(gone.email).not.toBe(user.email);
    expect((await call(`${t.url}/v1/auth/login`, { body: { email: user.email, password: user.password } })).status).toBe(401);
    const again = await call(`${t.url}/v1/auth/register`, {
      body: { email: user.email, password: 'Brand-New-Account-77', name: 'Back Again' },
    });
    expect(again.status).toBe(201);
    expect(again.body.user_id).not.toBe(user.id);

    const events = await eventually(async () => {
      const mine = (await streamEvents(t.context.redis, t.config.events.streamName)).filter((e) => e.payload.user_id === user.id);
      return mine.some((e) => e.type === 'user.deleted') ? mine : null;
    });
    expect(events.filter((e) => e.type === 'user.deleted')).toHaveLength(1);
    expect(events.filter((e) => e.type === 'session.revoked').map((e) => e.payload.data.reason)).toEqual([
      'account_deleted',
      'account_deleted',
    ]);
    expect(events.find((e) => e.type === 'trading_account.unlinked')?.payload.data).toEqual({ account_id: account.id, broker: 'kite' });
    for (const e of events) expect(e.raw).not.toContain(user.email);
  });
});

describe('deleting an account without a password (Google only)', () => {
  const passwordless = async () => {
    const user = await createUser(t.context.db);
    const session = await login(t.url, user);
    await t.context.db('users').where({ id: user.id }).update({ password_hash: null });
    return session;
  };

  test('a sign-in less than 5 minutes old confirms it', async () => {
    const me = await passwordless();
    expect((await call(`${t.url}/v1/users/me`, { method: 'DELETE', body: {}, headers: me.auth })).status).toBe(204);
  });

  test('an older sign-in needs a step-up verification token of this session', async () => {
    const me = await passwordless();
    // MFA is set up while the sign-in is fresh (set-up needs that too).
    const setup = await call(`${t.url}/v1/mfa/totp/setup`, { method: 'POST', body: {}, headers: me.auth });
    expect(setup.status).toBe(200);
    const authenticator = new Authenticator(setup.body.secret);
    expect((await call(`${t.url}/v1/mfa/totp/enable`, { body: { code: await authenticator.code() }, headers: me.auth })).status).toBe(200);
    await t.context
      .db('sessions')
      .where({ id: me.sessionId })
      .update({ auth_time: t.context.db.raw(`now() - interval '1 hour'`) });
    const refreshed = await call(`${t.url}/v1/auth/refresh`, { body: { refresh_token: me.refreshToken } });
    const auth = { Authorization: `Bearer ${refreshed.body.access_token}` };
    const refused = await call(`${t.url}/v1/users/me`, { method: 'DELETE', body: {}, headers: auth });
    expect(refused.status).toBe(403);
    expect(refused.body.type).toMatch(/reauthentication_required$/);
    const stepUp = await call(`${t.url}/v1/mfa/totp/verify`, { body: { code: await authenticator.code() }, headers: auth });
    expect(stepUp.status).toBe(200);
    expect(
      (
        await call(`${t.url}/v1/users/me`, {
          method: 'DELETE',
          body: {},
          headers: { ...auth, 'X-Verification-Token': 'forged-token-value-000000000000' },
        })
      ).status,
    ).toBe(403);
    expect(
      (
        await call(`${t.url}/v1/users/me`, {
          method: 'DELETE',
          body: {},
          headers: { ...auth, 'X-Verification-Token': stepUp.body.verification_token },
        })
      ).status,
    ).toBe(204);
  });
});
