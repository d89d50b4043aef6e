// Password reset (request a link, set a new password with it) and changing one's password while
// signed in, as a client sees them: answers, emails, sessions, events.
import { call, eventually, type TestApp } from '../helpers/app';
import type { TestSmtp } from '../helpers/smtp';
import { startStack, type TestStack } from '../helpers/stack';
import { createUser, type TestUser } from '../helpers/users';
import { login, streamEvents } from '../helpers/auth';
import { hashOpaqueToken } from '../../shared/crypto/access-tokens';
import { Authenticator } from '../mfa/rfc6238';
import { scanKeys } from '../../shared/redis';
import { REDIS_CLUSTER_NODES } from '../helpers/env';

jest.setTimeout(60_000);

let stack: TestStack;
let t: TestApp;
let smtp: TestSmtp;
beforeAll(async () => {
  stack = await startStack({ EMAIL_LINK_BASE_URL: 'https://app.example', RATELIMIT_PASSWORD_RESET_ATTEMPTS: '100' });
  ({ app: t, smtp } = stack);
});
afterAll(() => stack.close());

const NEW_PASSWORD = 'Brand-New-Passw0rd-42!';

// Pauses this process's workers, which BullMQ 5 does not reliably resume on a Redis Cluster: not in
// the cluster run (the Redis Cluster scale test kills and restarts workers instead).
(REDIS_CLUSTER_NODES ? test.skip : test)(
  'asking for a reset reads no user on the request path: the worker decides, the answer is the same (red team #7)',
  async () => {
    const user = await createUser(t.context.db);
    // The workers run in this process on the same pool: they wait while the requests are counted.
    await Promise.all(t.workers.map((worker) => worker.pause()));
    const statements: string[] = [];
    const record = (query: { sql: string }) => statements.push(query.sql);
    t.context.db.on('query', record);
    let answers: unknown[];
    try {
      answers = [];
      for (const email of [user.email, 'nobody-at-all@example.com']) {
        const r = await call(`${t.url}/v1/auth/password/reset-request`, { body: { email } });
        answers.push({ status: r.status, body: r.body });
      }
    } finally {
      t.context.db.off('query', record);
      for (const worker of t.workers) void worker.resume();
    }
    expect(statements.filter((sql) => /\busers\b/.test(sql))).toEqual([]);
    expect(answers[0]).toEqual(answers[1]);
    expect(answers[0]).toMatchObject({ status: 202 });
    // The worker looked the address up and sent the link.
    await smtp.waitFor((m) => m.to.includes(user.email) && m.subject === 'Reset your password');
  },
);

const requestReset = (app: TestApp, email: string, headers: Record<string, string> = {}) =>
  call(`${app.url}/v1/auth/password/reset-request`, { body: { email }, headers });
const reset = (app: TestApp, token: string, password = NEW_PASSWORD) =>
  call(`${app.url}/v1/auth/password/reset`, { body: { token, new_password: password } });

/** Waits for the n-th reset email to `email` and returns the token of its link. */
async function mailedToken(email: string, nth = 1): Promise<string> {
  await eventually(() => smtp.messages.filter((m) => m.to.includes(email) && m.subject === 'Reset your password').length >= nth);
  const mail = smtp.messages.filter((m) => m.to.includes(email) && m.subject === 'Reset your password')[nth - 1];
  const token = /https:\/\/app\.example\/reset-password\?token=([A-Za-z0-9_-]+)/.exec(mail.text)?.[1];
  expect(token).toBeDefined();
  return token!;
}

/** The stream's events of one user, once the relay has published everything. */
async function eventsOf(app: TestApp, userId: string) {
  await eventually(async () => Number((await app.context.db('events').whereNull('published_at').count({ n: '*' }).first())?.n) === 0);
  return (await streamEvents(app.context.redis, app.config.events.streamName)).filter((e) => e.payload.user_id === userId);
}

describe('password reset', () => {
  test('the same answer for a known and an unknown email; only the known one gets a link', async () => {
    const user = await createUser(t.context.db);
    const known = await requestReset(t, user.email.toUpperCase());
    const unknown = await requestReset(t, 'nobody-here@example.com');
    expect(known.status).toBe(202);
    expect(unknown.status).toBe(202);
    expect(unknown.body).toEqual(known.body);
    expect(known.body).toEqual({ status: 'accepted', message: expect.any(String) });
    await mailedToken(user.email);
    await new Promise((r) => setTimeout(r, 300));
    expect(smtp.messages.some((m) => m.to.includes('nobody-here@example.com'))).toBe(false);
    expect(await t.context.db('events').where({ type: 'password.reset_requested' }).whereNull('user_id').first()).toBeUndefined();
  });

  test('the mailed token works once, revokes every session, does not sign in, and leaves MFA on', async () => {
    const user = await createUser(t.context.db);
    const a = await login(t.url, user, { device_fingerprint: 'A' });
    const b = await login(t.url, user, { device_fingerprint: 'B' });
    // MFA on, through the API.
    const setup = await call(`${t.url}/v1/mfa/totp/setup`, { method: 'POST', headers: a.auth });
    const app = new Authenticator(setup.body.secret);
    expect((await call(`${t.url}/v1/mfa/totp/enable`, { body: { code: await app.code() }, headers: a.auth })).status).toBe(200);

    expect((await requestReset(t, user.email)).status).toBe(202);
    const token = await mailedToken(user.email);
    // Stored only as a hash, with the configured lifetime.
    const key = t.context.key('password-reset', hashOpaqueToken(token));
    expect(await t.context.redis.ttl(key)).toBeGreaterThan(30 * 60 - 10);
    expect(await t.context.redis.get(key)).not.toContain(token);
    expect((await scanKeys(t.context.redis, `${t.config.redis.keyPrefix}*`)).join('\n')).not.toContain(token);

    // A password the policy refuses does not spend the token.
    const weak = await reset(t, token, 'short');
    expect(weak.status).toBe(400);
    expect(weak.body.errors.map((e: { field: string }) => e.field)).toContain('new_password');

    const done = await reset(t, token);
    expect(done.status).toBe(204);
    expect(done.text).toBe('');
    expect(done.headers.get('set-cookie')).toBeNull();
    expect((await reset(t, token, 'Another-Passw0rd-77!')).status).toBe(400);

    for (const s of [a, b]) {
      expect((await call(`${t.url}/v1/auth/sessions`, { headers: s.auth })).status).toBe(401);
      expect((await call(`${t.url}/v1/auth/refresh`, { body: { refresh_token: s.refreshToken } })).status).toBe(401);
    }
    const sessions = await t.context.db('sessions').where({ user_id: user.id }).select('revoked_reason');
    expect(sessions.map((s) => s.revoked_reason)).toEqual(['password_reset', 'password_reset']);

    expect((await call(`${t.url}/v1/auth/login`, { body: { email: user.email, password: user.password } })).status).toBe(401);
    const next = await call(`${t.url}/v1/auth/login`, { body: { email: user.email, password: NEW_PASSWORD } });
    expect(next.status).toBe(200);
    expect(next.body).toEqual({ mfa_required: true, mfa_token: expect.any(String), expires_in: 300 });
    expect((await t.context.db('users').where({ id: user.id }).first())!.mfa_enabled).toBe(true);

    await smtp.waitFor((m) => m.to.includes(user.email) && m.subject === 'Your password was reset');
    const events = await eventsOf(t, user.id);
    expect(events.filter((e) => e.type.startsWith('password.')).map((e) => [e.type, e.payload.data])).toEqual([
      ['password.reset_requested', {}],
      ['password.reset_completed', { sessions_revoked: true }],
    ]);
    expect(
      events
        .filter((e) => e.type === 'session.revoked')
        .map((e) => e.payload.data)
        .sort((x, y) => x.session_id.localeCompare(y.session_id)),
    ).toEqual([a.sessionId, b.sessionId].sort().map((id) => ({ session_id: id, reason: 'password_reset' })));
    for (const e of events) expect(e.raw).not.toContain(token);
    expect(t.logs.text).not.toContain(token);
  });

  test('a reset spends every older link of the account', async () => {
    const user = await createUser(t.context.db);
    await requestReset(t, user.email);
    const first = await mailedToken(user.email, 1);
    await requestReset(t, user.email);
    const second = await mailedToken(user.email, 2);
    expect(second).not.toBe(first);
    expect((await reset(t, second)).status).toBe(204);
    expect((await reset(t, first, 'Yet-Another-Passw0rd-5!')).status).toBe(400);
  });

  test('suspended accounts get no link; garbage tokens are refused', async () => {
    const suspended = await createUser(t.context.db, { status: 'suspended' });
    expect((await requestReset(t, suspended.email)).status).toBe(202);
    const bad = await reset(t, 'x'.repeat(43));
    expect(bad.status).toBe(400);
    expect(bad.body.type).toMatch(/invalid_token$/);
    await new Promise((r) => setTimeout(r, 300));
    expect(smtp.messages.some((m) => m.to.includes(suspended.email))).toBe(false);
  });
});

describe('password reset with a short lifetime and the default limits', () => {
  let shortStack: TestStack;
  let short: TestApp;
  beforeAll(async () => {
    const env = { EMAIL_LINK_BASE_URL: 'https://app.example', PASSWORD_RESET_TOKEN_TTL_MINUTES: '0.02', TRUST_PROXY: 'true' };
    shortStack = await startStack(env, { smtp });
    short = shortStack.app;
  });
  afterAll(() => shortStack.close());

  test('an expired token is refused', async () => {
    const user: TestUser = await createUser(short.context.db);
    expect((await requestReset(short, user.email)).status).toBe(202);
    const token = await mailedToken(user.email);
    await eventually(async () => (await short.context.redis.exists(short.context.key('password-reset', hashOpaqueToken(token)))) === 0, {
      timeoutMs: 5000,
    });
    const r = await reset(short, token);
    expect(r.status).toBe(400);
    expect(r.body.type).toMatch(/invalid_token$/);
    expect((await call(`${short.url}/v1/auth/login`, { body: { email: user.email, password: user.password } })).status).toBe(200);
  });

  test('requests are limited per email (known or not) and per IP', async () => {
    const user = await createUser(short.context.db);
    for (const email of [user.email, 'ghost@example.com']) {
      for (let i = 1; i <= 5; i++) expect((await requestReset(short, email, { 'X-Forwarded-For': `10.1.${i}.1` })).status).toBe(202);
      const sixth = await requestReset(short, email, { 'X-Forwarded-For': '10.1.9.1' });
      expect(sixth.status).toBe(429);
      expect(sixth.headers.get('retry-after')).toEqual(expect.any(String));
    }
    for (let i = 1; i <= 5; i++)
      expect((await requestReset(short, `spray-${i}@example.com`, { 'X-Forwarded-For': '10.2.0.1' })).status).toBe(202);
    expect((await requestReset(short, 'spray-6@example.com', { 'X-Forwarded-For': '10.2.0.1' })).status).toBe(429);
  });
});

describe('change password', () => {
  test('needs the current password and a new one the policy accepts; other sessions stay', async () => {
    const user = await createUser(t.context.db);
    const a = await login(t.url, user, { device_fingerprint: 'A' });
    const b = await login(t.url, user, { device_fingerprint: 'B' });
    const change = (body: Record<string, unknown>, headers: Record<string, string> = a.auth) =>
      call(`${t.url}/v1/users/change-password`, { body, headers });

    expect((await change({ current_password: user.password, new_password: NEW_PASSWORD }, {})).status).toBe(401);
    const wrong = await change({ current_password: 'not-my-password', new_password: NEW_PASSWORD });
    expect(wrong.status).toBe(401);
    expect(wrong.body.type).toMatch(/invalid_current_password$/);
    const same = await change({ current_password: user.password, new_password: user.password });
    expect(same.status).toBe(400);
    expect(same.body.errors).toEqual([{ field: 'new_password', message: 'must differ from the current password' }]);
    const weak = await change({ current_password: user.password, new_password: 'password' });
    expect(weak.status).toBe(400);
    expect(weak.body.errors[0].field).toBe('new_password');

    expect((await change({ current_password: user.password, new_password: NEW_PASSWORD })).status).toBe(204);
    for (const s of [a, b]) expect((await call(`${t.url}/v1/auth/sessions`, { headers: s.auth })).status).toBe(200);
    expect((await call(`${t.url}/v1/auth/login`, { body: { email: user.email, password: user.password } })).status).toBe(401);
    expect((await call(`${t.url}/v1/auth/login`, { body: { email: user.email, password: NEW_PASSWORD } })).status).toBe(200);
    await smtp.waitFor((m) => m.to.includes(user.email) && m.subject === 'Your password was changed');
    const events = await eventsOf(t, user.id);
    expect(events.filter((e) => e.type === 'password.changed').map((e) => e.payload.data)).toEqual([{ other_sessions_revoked: false }]);
    expect(events.filter((e) => e.type === 'session.revoked')).toEqual([]);
  });

  test('revoke_other_sessions signs out every other session, not this one', async () => {
    const user = await createUser(t.context.db);
    const a = await login(t.url, user, { device_fingerprint: 'A' });
    const b = await login(t.url, user, { device_fingerprint: 'B' });
    const c = await login(t.url, user, { device_fingerprint: 'C' });
    const r = await call(`${t.url}/v1/users/change-password`, {
      body: { current_password: user.password, new_password: NEW_PASSWORD, revoke_other_sessions: true },
      headers: a.auth,
    });
    expect(r.status).toBe(204);
    expect((await call(`${t.url}/v1/auth/sessions`, { headers: a.auth })).status).toBe(200);
    for (const s of [b, c]) expect((await call(`${t.url}/v1/auth/sessions`, { headers: s.auth })).status).toBe(401);
    const events = await eventsOf(t, user.id);
    expect(events.filter((e) => e.type === 'password.changed').map((e) => e.payload.data)).toEqual([{ other_sessions_revoked: true }]);
    expect(
      events
        .filter((e) => e.type === 'session.revoked')
        .map((e) => [e.payload.data.session_id, e.payload.data.reason])
        .sort(),
    ).toEqual(
      [
        [b.sessionId, 'password_change'],
        [c.sessionId, 'password_change'],
      ].sort(),
    );
  });
});
