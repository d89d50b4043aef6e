// MFA as a client sees it: TOTP set-up and enable, signing in with a code, step-up, backup
// codes, the wrong-code limit, turning MFA off, and the secret staying secret. Codes come from the
// independent RFC 6238 implementation in ./rfc6238.ts, never from the service's library.
import { call, eventually, type Reply, type TestApp } from '../helpers/app';
import type { TestSmtp } from '../helpers/smtp';
import { startStack, type TestStack } from '../helpers/stack';
import type { TestUser } from '../helpers/users';
import { signedInUser, streamEvents, type SignedIn } from '../helpers/auth';
import { hashOpaqueToken } from '../../shared/crypto/access-tokens';
import { checkVerificationToken, mfaSecretContext } from '../../shared/mfa/service';
import { requireVerificationToken } from '../../api/mfa/step-up';
import { ForbiddenError } from '../../shared/errors';
import { Authenticator, base32Decode, wrongCode } from './rfc6238';
import { scanKeys } from '../../shared/redis';

jest.setTimeout(90_000);

let stack: TestStack;
let t: TestApp;
let smtp: TestSmtp;
beforeAll(async () => {
  stack = await startStack({ APP_NAME: 'Acme Trading' });
  ({ app: t, smtp } = stack);
});
afterAll(() => stack.close());

/** Every secret handed out by set-up, and every response given after it, for the secrecy test. */
const secrets: string[] = [];
const responses: { path: string; reply: Reply }[] = [];

async function api(path: string, init: Parameters<typeof call>[1] = {}): Promise<Reply> {
  const reply = await call(`${t.url}${path}`, { method: 'POST', ...init });
  responses.push({ path, reply });
  return reply;
}

interface Enrolled {
  user: SignedIn;
  app: Authenticator;
  secret: string;
  backupCodes: string[];
}

async function setup(user: SignedIn): Promise<Reply> {
  const r = await call(`${t.url}/v1/mfa/totp/setup`, { method: 'POST', headers: user.auth });
  if (r.status === 200) secrets.push(r.body.secret);
  return r;
}

/** A signed-in user who has set up and enabled TOTP through the API. */
async function enrol(): Promise<Enrolled> {
  const user = await signedInUser(t.context.db, t.url);
  const r = await setup(user);
  expect(r.status).toBe(200);
  const app = new Authenticator(r.body.secret);
  const enabled = await api('/v1/mfa/totp/enable', { body: { code: await app.code() }, headers: user.auth });
  expect(enabled.status).toBe(200);
  return { user, app, secret: r.body.secret, backupCodes: enabled.body.backup_codes };
}

async function challenge(user: TestUser): Promise<string> {
  const r = await api('/v1/auth/login', { body: { email: user.email, password: user.password } });
  expect(r.status).toBe(200);
  expect(r.body).toEqual({ mfa_required: true, mfa_token: expect.any(String), expires_in: 300 });
  return r.body.mfa_token;
}

const verifyLogin = (mfaToken: string, code: string) => api('/v1/auth/mfa/verify', { body: { mfa_token: mfaToken, code } });
const claimsOf = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));

describe('set-up and enable', () => {
  test('setup: a 160-bit secret, its otpauth URI (issuer, account) and a QR code data URL; a new setup replaces the pending one', async () => {
    const user = await signedInUser(t.context.db, t.url);
    const first = await setup(user);
    expect(first.status).toBe(200);
    expect(first.body).toEqual({
      secret: expect.stringMatching(/^[A-Z2-7]{32}$/),
      otpauth_uri: expect.any(String),
      qr_code: expect.stringMatching(/^data:image\/png;base64,[A-Za-z0-9+/=]+$/),
      expires_in: 900,
    });
    expect(base32Decode(first.body.secret).length * 8).toBeGreaterThanOrEqual(160);
    const uri = new URL(first.body.otpauth_uri);
    expect(uri.protocol).toBe('otpauth:');
    expect(uri.host).toBe('totp');
    expect(decodeURIComponent(uri.pathname)).toBe(`/Acme Trading:${user.email}`);
    expect(Object.fromEntries(uri.searchParams)).toMatchObject({ secret: first.body.secret, issuer: 'Acme Trading' });
    expect(uri.searchParams.get('digits') ?? '6').toBe('6');
    expect(uri.searchParams.get('period') ?? '30').toBe('30');
    expect((uri.searchParams.get('algorithm') ?? 'SHA1').toUpperCase()).toBe('SHA1');

    // The pending secret waits in Redis, encrypted, for 15 minutes.
    const pendingKey = t.context.key('mfa-setup', user.id);
    expect(await t.context.redis.ttl(pendingKey)).toBeGreaterThan(880);
    expect(await t.context.redis.get(pendingKey)).not.toContain(first.body.secret);

    const second = await setup(user);
    expect(second.body.secret).not.toBe(first.body.secret);
    const stale = await api('/v1/mfa/totp/enable', {
      body: { code: await new Authenticator(first.body.secret).code() },
      headers: user.auth,
    });
    expect(stale.status).toBe(400);
    expect(stale.body.type).toMatch(/invalid_code$/);
    const app = new Authenticator(second.body.secret);
    // A code two steps old is outside the window.
    expect((await api('/v1/mfa/totp/enable', { body: { code: await app.staleCode() }, headers: user.auth })).status).toBe(400);
    const enabled = await api('/v1/mfa/totp/enable', { body: { code: await app.code() }, headers: user.auth });
    expect(enabled.status).toBe(200);
    expect(enabled.body).toEqual({ enabled: true, backup_codes: expect.any(Array) });
    expect(await t.context.redis.exists(pendingKey)).toBe(0);
    expect((await setup(user)).status).toBe(409);
    expect((await api('/v1/mfa/totp/enable', { body: { code: await app.code() }, headers: user.auth })).status).toBe(409);
  });

  test('enable stores the secret encrypted, 8 distinct backup codes as hashes, and sends a notice', async () => {
    const { user, secret, backupCodes } = await enrol();
    expect(backupCodes).toHaveLength(8);
    expect(new Set(backupCodes).size).toBe(8);
    for (const code of backupCodes) expect(code).toMatch(/^[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}$/);

    const row = (await t.context.db('users').where({ id: user.id }).first())!;
    expect(row).toMatchObject({ mfa_enabled: true, mfa_enabled_at: expect.any(Date) });
    expect(row.mfa_secret_encrypted).toMatch(/^v1\./);
    expect(JSON.stringify(row)).not.toContain(secret);
    // It is the secret, under envelope encryption bound to this user's row.
    expect(t.context.kms.decrypt(row.mfa_secret_encrypted!, mfaSecretContext(user.id))).toBe(secret);
    expect(() => t.context.kms.decrypt(row.mfa_secret_encrypted!, mfaSecretContext('someone-else'))).toThrow();

    const stored = await t.context.db('mfa_backup_codes').where({ user_id: user.id }).select();
    expect(stored).toHaveLength(8);
    const storedText = JSON.stringify(stored);
    for (const code of backupCodes) {
      expect(storedText).not.toContain(code);
      expect(storedText).not.toContain(code.replace(/-/g, ''));
    }
    const mail = await smtp.waitFor((m) => m.to.includes(user.email) && m.subject === 'Two-factor authentication is on');
    expect(mail.text).not.toContain(secret);
  });

  test('a wrong code, no pending set-up, or no bearer token are refused', async () => {
    const user = await signedInUser(t.context.db, t.url);
    expect((await api('/v1/mfa/totp/enable', { body: { code: '123456' }, headers: user.auth })).body.type).toMatch(/no_pending_setup$/);
    const r = await setup(user);
    expect((await api('/v1/mfa/totp/enable', { body: { code: wrongCode(r.body.secret) }, headers: user.auth })).status).toBe(400);
    expect((await api('/v1/mfa/totp/enable', { body: { code: 'abc' }, headers: user.auth })).status).toBe(400);
    expect((await api('/v1/mfa/totp/setup')).status).toBe(401);
    expect((await t.context.db('users').where({ id: user.id }).first())!.mfa_enabled).toBe(false);
  });
});

describe('signing in with MFA', () => {
  test('a TOTP code completes the challenge: token pair with amr [pwd, mfa], cookie, single-use challenge; a replayed code is refused', async () => {
    const { user, app } = await enrol();
    const token = await challenge(user);
    const code = await app.code();
    const r = await verifyLogin(token, code);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      access_token: expect.any(String),
      refresh_token: expect.any(String),
      token_type: 'Bearer',
      session_id: expect.any(String),
      user: { id: user.id, mfa_enabled: true },
    });
    expect(claimsOf(r.body.access_token).amr).toEqual(['pwd', 'mfa']);
    expect(r.headers.get('set-cookie')).toMatch(/^__Secure-refresh_token=/);
    expect(await t.context.db('sessions').where({ id: r.body.session_id }).first()).toMatchObject({
      user_id: user.id,
      amr: ['pwd', 'mfa'],
    });
    expect(await t.context.redis.exists(t.context.key('mfa-challenge', hashOpaqueToken(token)))).toBe(0);
    // The access token works on our endpoints.
    expect((await call(`${t.url}/v1/auth/sessions`, { headers: { Authorization: `Bearer ${r.body.access_token}` } })).status).toBe(200);

    // The challenge is spent, and the code too: a new challenge with the same code fails.
    expect((await verifyLogin(token, await app.code())).status).toBe(401);
    const again = await challenge(user);
    const replay = await verifyLogin(again, code);
    expect(replay.status).toBe(401);
    expect(replay.body.type).toMatch(/invalid_code$/);
    // A code two steps old is refused too.
    expect((await verifyLogin(again, await app.staleCode())).status).toBe(401);
  });

  test('an unknown mfa_token gets 401', async () => {
    const r = await verifyLogin('x'.repeat(43), '123456');
    expect(r.status).toBe(401);
    expect(r.body.type).toMatch(/invalid_mfa_token$/);
  });

  test('two concurrent uses of one code: exactly one signs in', async () => {
    const { user, app } = await enrol();
    const [a, b] = [await challenge(user), await challenge(user)];
    const code = await app.code();
    const results = await Promise.all([verifyLogin(a, code), verifyLogin(b, code)]);
    expect(results.map((r) => r.status).sort()).toEqual([200, 401]);
  });

  test('each backup code works once, in any case and with or without dashes', async () => {
    const { user, backupCodes } = await enrol();
    const ok = await verifyLogin(await challenge(user), backupCodes[0].toUpperCase().replace(/-/g, ''));
    expect(ok.status).toBe(200);
    expect(claimsOf(ok.body.access_token).amr).toEqual(['pwd', 'mfa']);
    expect((await verifyLogin(await challenge(user), backupCodes[0])).status).toBe(401);
    expect((await t.context.db('mfa_backup_codes').where({ user_id: user.id }).whereNotNull('used_at')).length).toBe(1);
    expect((await verifyLogin(await challenge(user), backupCodes[1])).status).toBe(200);
  });

  test('the sixth wrong code for one challenge is refused with 429 even when correct, and the challenge is deleted', async () => {
    const { user, app, secret } = await enrol();
    const token = await challenge(user);
    for (let i = 0; i < 5; i++) expect((await verifyLogin(token, wrongCode(secret))).status).toBe(401);
    const sixth = await verifyLogin(token, await app.code());
    expect(sixth.status).toBe(429);
    expect(Number(sixth.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await t.context.redis.exists(t.context.key('mfa-challenge', hashOpaqueToken(token)))).toBe(0);
    expect((await verifyLogin(token, await app.code())).status).toBe(401);
    expect(
      await t.context
        .db('sessions')
        .where({ user_id: user.id, amr: ['pwd', 'mfa'] })
        .first(),
    ).toBeUndefined();
  });

  test('a new challenge does not reset the count of wrong codes for the account', async () => {
    const { user, app, secret, backupCodes } = await enrol();
    const first = await challenge(user);
    for (let i = 0; i < 3; i++) expect((await verifyLogin(first, wrongCode(secret))).status).toBe(401);
    const second = await challenge(user);
    // Wrong backup codes count as wrong codes too.
    for (let i = 0; i < 2; i++) expect((await verifyLogin(second, 'zzzz-zzzz-zzzz')).status).toBe(401);
    expect((await verifyLogin(second, await app.code())).status).toBe(429);
    // A backup code is no way around it either.
    expect((await verifyLogin(await challenge(user), backupCodes[0])).status).toBe(429);
  });
});

describe('step-up verification', () => {
  test('a code gives a verification token bound to the user and session, reusable for 5 minutes', async () => {
    const { user, app } = await enrol();
    const code = await app.code();
    const r = await api('/v1/mfa/totp/verify', { body: { code }, headers: user.auth });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ verification_token: expect.any(String), expires_in: 300 });
    const token = r.body.verification_token;
    const ttl = await t.context.redis.ttl(t.context.key('mfa-verification', hashOpaqueToken(token)));
    expect(ttl).toBeGreaterThan(290);
    expect(ttl).toBeLessThanOrEqual(300);

    const mine = { userId: user.id, sessionId: user.sessionId };
    expect(await checkVerificationToken(t.context, mine, token)).toBe(true);
    expect(await checkVerificationToken(t.context, mine, token)).toBe(true);
    expect(await checkVerificationToken(t.context, { ...mine, sessionId: '00000000-0000-4000-8000-000000000000' }, token)).toBe(false);
    expect(await checkVerificationToken(t.context, { ...mine, userId: '00000000-0000-4000-8000-000000000000' }, token)).toBe(false);
    expect(await checkVerificationToken(t.context, mine, 'not-the-token')).toBe(false);

    // The middleware later features put in front of sensitive operations.
    const middleware = requireVerificationToken(t.context);
    const ctxWith = (header: string) => ({
      state: { principal: { ...mine, roles: [], amr: [], token: null, via: 'bearer' } },
      get: (name: string) => (name.toLowerCase() === 'x-verification-token' ? header : ''),
    });
    const next = jest.fn(() => Promise.resolve(undefined));
    await middleware(ctxWith(token) as never, next);
    expect(next).toHaveBeenCalledTimes(1);
    await expect(middleware(ctxWith('') as never, next)).rejects.toBeInstanceOf(ForbiddenError);
    await expect(middleware(ctxWith('forged-token-forged-token') as never, next)).rejects.toBeInstanceOf(ForbiddenError);
    expect(next).toHaveBeenCalledTimes(1);

    // The same code again is a replay.
    expect((await api('/v1/mfa/totp/verify', { body: { code }, headers: user.auth })).status).toBe(401);
  });

  test('five wrong codes at enable sign that session out, not the account (red team #5)', async () => {
    const user = await signedInUser(t.context.db, t.url);
    const r = await setup(user);
    const wrong = wrongCode(r.body.secret);
    const answers = [];
    for (let i = 0; i < 5; i++) answers.push((await api('/v1/mfa/totp/enable', { body: { code: wrong }, headers: user.auth })).status);
    expect(answers.slice(0, 4)).toEqual([400, 400, 400, 400]);
    expect(answers[4]).toBe(401);
    // That session is over, everywhere; the account is not locked: the password signs in again.
    expect((await call(`${t.url}/v1/auth/sessions`, { headers: user.auth })).status).toBe(401);
    expect((await t.context.db('sessions').where({ id: user.sessionId }).first())!.revoked_reason).toBe('mfa_failures');
    expect((await call(`${t.url}/v1/auth/login`, { body: { email: user.email, password: user.password } })).status).toBe(200);
  });

  test('a stolen access token cannot lock the owner out: five wrong step-up codes end that session only (red team #9)', async () => {
    const { user, app } = await enrol();
    for (let i = 0; i < 4; i++)
      expect((await api('/v1/mfa/totp/verify', { body: { code: '000000' }, headers: user.auth })).status).toBe(401);
    const fifth = await api('/v1/mfa/totp/verify', { body: { code: '000000' }, headers: user.auth });
    expect(fifth.status).toBe(401);
    expect(fifth.body.type).toMatch(/session_revoked$/);
    expect((await call(`${t.url}/v1/auth/sessions`, { headers: user.auth })).status).toBe(401);
    const events = await eventually(async () => {
      const all = await streamEvents(t.context.redis, t.config.events.streamName);
      return all.find((e) => e.type === 'session.revoked' && e.payload.data.session_id === user.sessionId);
    });
    expect(events.payload.data.reason).toBe('mfa_failures');
    // The owner completes an MFA sign-in at once.
    const signedIn = await verifyLogin(await challenge(user), await app.code());
    expect(signedIn.status).toBe(200);
  });

  test('step-up needs MFA to be on', async () => {
    const user = await signedInUser(t.context.db, t.url);
    const r = await api('/v1/mfa/totp/verify', { body: { code: '123456' }, headers: user.auth });
    expect(r.status).toBe(409);
    expect(r.body.type).toMatch(/mfa_not_enabled$/);
  });
});

describe('backup codes and turning MFA off', () => {
  test('regenerate gives 8 new codes and kills the old set', async () => {
    const { user, app, backupCodes } = await enrol();
    const r = await api('/v1/mfa/backup-codes/regenerate', { body: { code: await app.code() }, headers: user.auth });
    expect(r.status).toBe(200);
    expect(r.body.backup_codes).toHaveLength(8);
    expect(r.body.backup_codes.filter((c: string) => backupCodes.includes(c))).toEqual([]);
    expect(Number((await t.context.db('mfa_backup_codes').where({ user_id: user.id }).count({ n: '*' }).first())?.n)).toBe(8);
    expect((await verifyLogin(await challenge(user), backupCodes[0])).status).toBe(401);
    expect((await verifyLogin(await challenge(user), r.body.backup_codes[0])).status).toBe(200);
  });

  test('disable needs the password and a code; then sign-in needs no code, the codes are gone, and a notice is sent', async () => {
    const { user, app, secret, backupCodes } = await enrol();
    expect(
      (await api('/v1/mfa/totp/disable', { body: { password: 'wrong-password', code: backupCodes[0] }, headers: user.auth })).status,
    ).toBe(401);
    expect(
      (await api('/v1/mfa/totp/disable', { body: { password: user.password, code: wrongCode(secret) }, headers: user.auth })).status,
    ).toBe(401);
    expect((await t.context.db('users').where({ id: user.id }).first())!.mfa_enabled).toBe(true);
    const r = await api('/v1/mfa/totp/disable', { body: { password: user.password, code: await app.code() }, headers: user.auth });
    expect(r.status).toBe(204);
    expect(await t.context.db('users').where({ id: user.id }).first()).toMatchObject({ mfa_enabled: false, mfa_secret_encrypted: null });
    expect(await t.context.db('mfa_backup_codes').where({ user_id: user.id })).toEqual([]);
    const login = await api('/v1/auth/login', { body: { email: user.email, password: user.password } });
    expect(login.status).toBe(200);
    expect(login.body.access_token).toEqual(expect.any(String));
    expect(
      (await api('/v1/mfa/totp/disable', { body: { password: user.password, code: backupCodes[1] }, headers: user.auth })).status,
    ).toBe(409);
    await smtp.waitFor((m) => m.to.includes(user.email) && m.subject === 'Two-factor authentication is off');
  });

  test('a backup code can turn MFA off (a lost phone)', async () => {
    const { user, backupCodes } = await enrol();
    expect(
      (await api('/v1/mfa/totp/disable', { body: { password: user.password, code: backupCodes[3] }, headers: user.auth })).status,
    ).toBe(204);
  });
});

describe('events and secrecy', () => {
  test('mfa.enabled and mfa.disabled land on the stream once each, with empty data', async () => {
    const { user, app } = await enrol();
    expect(
      (await api('/v1/mfa/totp/disable', { body: { password: user.password, code: await app.code() }, headers: user.auth })).status,
    ).toBe(204);
    const mine = await eventually(async () => {
      const events = (await streamEvents(t.context.redis, t.config.events.streamName)).filter(
        (e) => e.payload.user_id === user.id && e.type.startsWith('mfa.'),
      );
      return events.length >= 2 && events;
    });
    await new Promise((r) => setTimeout(r, 300));
    const settled = (await streamEvents(t.context.redis, t.config.events.streamName)).filter(
      (e) => e.payload.user_id === user.id && e.type.startsWith('mfa.'),
    );
    expect(settled.map((e) => e.type)).toEqual(['mfa.enabled', 'mfa.disabled']);
    expect(settled.map((e) => e.payload.data)).toEqual([{}, {}]);
    expect(mine.map((e) => e.payload.actor_id)).toEqual([user.id, user.id]);
  });

  test('no TOTP secret is readable in the database, the logs, the event stream, Redis or any response after set-up', async () => {
    expect(secrets.length).toBeGreaterThan(10);
    // Let the relay and the email worker finish what the tests started.
    await eventually(async () => Number((await t.context.db('events').whereNull('published_at').count({ n: '*' }).first())?.n) === 0);
    const haystacks: [string, string][] = [
      ['logs', t.logs.text],
      ['stream', (await streamEvents(t.context.redis, t.config.events.streamName)).map((e) => e.raw).join('\n')],
      ['responses', responses.map(({ reply }) => `${reply.text}\n${[...reply.headers.values()].join('\n')}`).join('\n')],
    ];
    for (const table of ['users', 'events', 'email_messages', 'mfa_backup_codes', 'sessions']) {
      haystacks.push([`table ${table}`, JSON.stringify(await t.context.db(table).select())]);
    }
    const keys = await scanKeys(t.context.redis, `${t.config.redis.keyPrefix}*`);
    const values = await Promise.all(keys.map(async (k) => ((await t.context.redis.type(k)) === 'string' ? t.context.redis.get(k) : '')));
    haystacks.push(['redis', values.join('\n')]);
    for (const secret of secrets) {
      for (const [where, text] of haystacks) expect([where, text.includes(secret)]).toEqual([where, false]);
    }
    expect(t.logs.lines.length).toBeGreaterThan(50);
  });
});

test('TOTP set-up needs a sign-in less than 5 minutes old: a stolen access token cannot enrol an authenticator', async () => {
  const user = await signedInUser(t.context.db, t.url);
  await t.context
    .db('sessions')
    .where({ id: user.sessionId })
    .update({ auth_time: t.context.db.raw(`now() - interval '10 minutes'`) });
  const refreshed = await call(`${t.url}/v1/auth/refresh`, { body: { refresh_token: user.refreshToken } });
  const r = await call(`${t.url}/v1/mfa/totp/setup`, {
    method: 'POST',
    body: {},
    headers: { Authorization: `Bearer ${refreshed.body.access_token}` },
  });
  expect(r.status).toBe(403);
  expect(r.body.type).toMatch(/reauthentication_required$/);
});
