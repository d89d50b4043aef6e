// Rate limits trip at the configured count and reset after the window: failed sign-ins per
// (email, IP), per IP across emails and per email across IPs; registrations per IP; refreshes per
// session; verification emails per address; and all of them across api copies sharing one Redis.
// A tripped limit answers 429 problem+json with Retry-After and the RateLimit-* headers.
import crypto from 'node:crypto';
import { call, startTestApp, type Reply, type TestApp } from '../helpers/app';
import { createUser } from '../helpers/users';
import { login } from '../helpers/auth';
import { hashOpaqueToken } from '../../shared/crypto/access-tokens';
import { normalizeEmail } from '../../shared/users/email';
import { scanKeys } from '../../shared/redis';

/** Every window here is 3 s: 0.05 minutes, or 3/3600 hours. */
const WINDOW_SECONDS = 3;
const WINDOW_MINUTES = String(WINDOW_SECONDS / 60);
const WINDOW_HOURS = String(WINDOW_SECONDS / 3600);
const PASSWORD = 'Correct-Horse-42-Battery';

/** Not a timing assertion: waits until the window has surely expired. */
const waitForWindow = () => new Promise((resolve) => setTimeout(resolve, WINDOW_SECONDS * 1000 + 500));

const loginWith = (t: TestApp, email: string, password: string, ip?: string) =>
  call(`${t.url}/v1/auth/login`, { body: { email, password }, headers: ip ? { 'X-Forwarded-For': ip } : {} });
const register = (t: TestApp, email: string) =>
  call(`${t.url}/v1/auth/register`, { body: { email, password: PASSWORD, name: 'Rate Limited' } });
const refresh = (t: TestApp, token: string) => call(`${t.url}/v1/auth/refresh`, { body: { refresh_token: token } });
const resend = (t: TestApp, email: string) => call(`${t.url}/v1/auth/verify-email/resend`, { body: { email } });

const integerHeader = (r: Reply, name: string): number => {
  const value = r.headers.get(name);
  expect(value).toMatch(/^\d+$/);
  return Number(value);
};

/** A 429 problem with its headers; `secrets` (passwords, tokens sent) must not be echoed. */
function expectRateLimited(r: Reply, limit: number, secrets: string[] = []): void {
  expect(r.status).toBe(429);
  expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(r.body).toMatchObject({ type: expect.stringMatching(/rate_limited$/), status: 429, title: expect.any(String) });
  const retryAfter = integerHeader(r, 'Retry-After');
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(WINDOW_SECONDS);
  expect(integerHeader(r, 'RateLimit-Limit')).toBe(limit);
  expect(integerHeader(r, 'RateLimit-Remaining')).toBe(0);
  const reset = integerHeader(r, 'RateLimit-Reset');
  expect(reset).toBeGreaterThanOrEqual(1);
  expect(reset).toBeLessThanOrEqual(WINDOW_SECONDS);
  for (const secret of secrets) expect(r.text).not.toContain(secret);
}

describe('one api', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({
      RATELIMIT_LOGIN_ATTEMPTS: '3',
      RATELIMIT_LOGIN_WINDOW_MINUTES: WINDOW_MINUTES,
      RATELIMIT_REGISTER_ATTEMPTS: '2',
      RATELIMIT_REGISTER_WINDOW_HOURS: WINDOW_HOURS,
      RATELIMIT_REFRESH_ATTEMPTS: '3',
      RATELIMIT_REFRESH_WINDOW_MINUTES: WINDOW_MINUTES,
      REFRESH_TOKEN_REUSE_INTERVAL_SECONDS: '0',
      RATELIMIT_EMAIL_ATTEMPTS: '2',
      RATELIMIT_EMAIL_WINDOW_MINUTES: WINDOW_MINUTES,
    });
  });
  afterAll(() => t.close());

  test('login: the 4th attempt after 3 failures of one (email, IP) is 429 even with the right password, and works after the window', async () => {
    const user = await createUser(t.context.db);
    for (let i = 0; i < 3; i++) expect((await loginWith(t, user.email, `${user.password}-wrong-${i}`)).status).toBe(401);
    const blocked = await loginWith(t, user.email, user.password);
    expectRateLimited(blocked, 3, [user.password]);
    // Another address from the same IP is not held up by this pair.
    const other = await createUser(t.context.db);
    expect((await loginWith(t, other.email, other.password)).status).toBe(200);

    await waitForWindow();
    const after = await loginWith(t, user.email, user.password);
    expect(after.status).toBe(200);
    expect(after.body.access_token).toEqual(expect.any(String));
  });

  test('login: a success clears the pair, so 2 failures, a success and 3 more failures are all 401', async () => {
    const user = await createUser(t.context.db);
    for (let i = 0; i < 2; i++) expect((await loginWith(t, user.email, 'Wrong-Password-1!')).status).toBe(401);
    expect((await loginWith(t, user.email, user.password)).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await loginWith(t, user.email, 'Wrong-Password-1!')).status).toBe(401);
    // ...and that fills the pair again.
    expectRateLimited(await loginWith(t, user.email, user.password), 3, [user.password]);
  });

  test('login: guesses sent all at once get no more verdicts than the limit, the right password among them', async () => {
    const user = await createUser(t.context.db, { password: PASSWORD });
    const guesses = [...Array.from({ length: 11 }, (_, i) => `Wrong-Guess-${i}-42!`), PASSWORD];
    const answers = await Promise.all(guesses.map((password) => loginWith(t, user.email, password)));
    const verdicts = answers.filter((r) => r.status !== 429);
    expect(verdicts.length).toBeLessThanOrEqual(3);
    for (const r of answers.filter((a) => a.status === 429)) expectRateLimited(r, 3, [PASSWORD]);
  });

  test("login: every spelling of one account counts against one counter, at the API and the operators' sign-in (red team #2)", async () => {
    // Basic auth, where İ for i got in, is gone; the JSON endpoints take ASCII addresses only, and
    // the normaliser (next test) folds everything else as the database does.
    const email = `admin-${crypto.randomBytes(4).toString('hex')}@example.com`;
    const user = await createUser(t.context.db, { email, roles: ['admin'] });
    const operator = (address: string, password: string) => call(`${t.url}/admin/login`, { body: { email: address, password } });
    expect((await operator(email, 'Wrong-Password-1!')).status).toBe(401);
    expect((await loginWith(t, email.toUpperCase(), 'Wrong-Password-1!')).status).toBe(401);
    expect((await operator(email.replace('admin', 'ADMIN'), 'Wrong-Password-1!')).status).toBe(401);
    expectRateLimited(await operator(email, user.password), 3, [user.password]);
    expectRateLimited(await loginWith(t, email.toUpperCase(), user.password), 3, [user.password]);
    expect((await operator(email.replace('i', 'İ'), user.password)).status).toBe(400);
  });

  test('the email normaliser lower-cases as this database compares, character by character (red team #2)', async () => {
    const samples = [
      'ADMIN@EXAMPLE.COM',
      'admİn@example.com',
      'ΣΟΦΙΑΣ@example.com',
      'STRAẞE@example.com',
      'ǅ@example.io',
      '\u212Aelvin@example.io',
      ' Trim@Me.com ',
    ];
    for (const sample of samples) {
      const { rows } = await t.context.db.raw<{ rows: { lowered: string; same: boolean }[] }>(
        'SELECT lower(?::text) AS lowered, ?::citext = ?::citext AS same',
        [sample.trim(), sample.trim(), normalizeEmail(sample)],
      );
      expect([sample, normalizeEmail(sample), rows[0].same]).toEqual([sample, rows[0].lowered, true]);
    }
  });

  test('rate-limit keys hold no email address, not even a mistyped one (red team #13)', async () => {
    const known = await createUser(t.context.db, { email: `keyed-${crypto.randomBytes(4).toString('hex')}@example.com` });
    const typo = `typo-${crypto.randomBytes(4).toString('hex')}@exmaple.com`;
    for (const email of [known.email, typo]) {
      expect((await loginWith(t, email, 'Wrong-Password-1!')).status).toBe(401);
      expect((await resend(t, email)).status).toBe(202);
    }
    const keys = await scanKeys(t.context.redis, `${t.config.redis.keyPrefix}*`);
    expect(keys.some((key) => key.includes(':rl:'))).toBe(true);
    for (const address of [known.email, typo]) {
      expect(keys.filter((key) => key.toLowerCase().includes(address.split('@')[0]))).toEqual([]);
    }
  });

  test('registration: the 3rd from one IP is 429, and registering works again after the window', async () => {
    expect((await register(t, 'reg-1@example.com')).status).toBe(201);
    expect((await register(t, 'reg-2@example.com')).status).toBe(201);
    const blocked = await register(t, 'reg-3@example.com');
    expectRateLimited(blocked, 2, [PASSWORD]);
    expect(await t.context.db('users').where({ email: 'reg-3@example.com' }).first()).toBeUndefined();

    await waitForWindow();
    expect((await register(t, 'reg-3@example.com')).status).toBe(201);
  });

  test('refresh: the 4th rotation of a session is 429 without spending the token, which refreshes after the window', async () => {
    const session = await login(t.url, await createUser(t.context.db));
    let token = session.refreshToken;
    for (let i = 0; i < 3; i++) {
      const r = await refresh(t, token);
      expect(r.status).toBe(200);
      expect(r.body.refresh_token).not.toBe(token);
      token = r.body.refresh_token;
    }
    const tokensBefore = await t.context
      .db('refresh_tokens')
      .where({ session_id: session.sessionId })
      .count<{ count: string }[]>('* as count');
    const blocked = await refresh(t, token);
    expectRateLimited(blocked, 3, [token]);
    expect(blocked.headers.get('set-cookie')).toBeNull();
    // The 429 neither rotated the token nor issued a successor.
    const row = await t.context
      .db('refresh_tokens')
      .where({ token_hash: hashOpaqueToken(token) })
      .first();
    expect(row!.rotated_at).toBeNull();
    expect(await t.context.db('refresh_tokens').where({ session_id: session.sessionId }).count<{ count: string }[]>('* as count')).toEqual(
      tokensBefore,
    );

    await waitForWindow();
    const after = await refresh(t, token);
    expect(after.status).toBe(200);
    expect(after.body.session_id).toBe(session.sessionId);
    // Not treated as reuse: the session lives on.
    expect((await t.context.db('sessions').where({ id: session.sessionId }).first())!.revoked_at).toBeNull();
  });

  test('verification resend: the 3rd request for one address is 429 (whatever its case); another address still gets 202', async () => {
    expect((await resend(t, 'someone@example.com')).status).toBe(202);
    expect((await resend(t, 'someone@example.com')).status).toBe(202);
    expectRateLimited(await resend(t, 'someone@example.com'), 2);
    expectRateLimited(await resend(t, 'SomeOne@Example.COM'), 2);
    expect((await resend(t, 'someone-else@example.com')).status).toBe(202);
  });
});

describe('login caps per IP and per email', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({
      TRUST_PROXY: 'true',
      RATELIMIT_LOGIN_ATTEMPTS: '10',
      RATELIMIT_LOGIN_IP_ATTEMPTS: '4',
      RATELIMIT_LOGIN_EMAIL_ATTEMPTS: '4',
      RATELIMIT_LOGIN_WINDOW_MINUTES: WINDOW_MINUTES,
    });
  });
  afterAll(() => t.close());

  test('failures spread over many emails from one IP block a further email from that IP, not from another', async () => {
    const ip = '198.51.100.7';
    for (let i = 0; i < 4; i++) expect((await loginWith(t, `spray-${i}@example.com`, 'Wrong-Password-1!', ip)).status).toBe(401);
    const victim = await createUser(t.context.db);
    expectRateLimited(await loginWith(t, victim.email, victim.password, ip), 4, [victim.password]);
    expect((await loginWith(t, victim.email, victim.password, '198.51.100.8')).status).toBe(200);
  });

  test('failures for one email from 4 IPs block the 5th IP; another email from those IPs is not blocked', async () => {
    const user = await createUser(t.context.db);
    const ips = ['203.0.113.1', '203.0.113.2', '203.0.113.3', '203.0.113.4'];
    for (const ip of ips) expect((await loginWith(t, user.email, 'Wrong-Password-1!', ip)).status).toBe(401);
    expectRateLimited(await loginWith(t, user.email, user.password, '203.0.113.5'), 4, [user.password]);
    const other = await createUser(t.context.db);
    expect((await loginWith(t, other.email, 'Wrong-Password-1!', ips[0])).status).toBe(401);
    expect((await loginWith(t, other.email, other.password, ips[1])).status).toBe(200);
  });
});

describe('two api copies on one database and Redis', () => {
  let t1: TestApp;
  let t2: TestApp;
  beforeAll(async () => {
    const limits = {
      RATELIMIT_LOGIN_ATTEMPTS: '3',
      RATELIMIT_LOGIN_WINDOW_MINUTES: WINDOW_MINUTES,
      RATELIMIT_REGISTER_ATTEMPTS: '2',
      RATELIMIT_REGISTER_WINDOW_HOURS: WINDOW_HOURS,
    };
    t1 = await startTestApp(limits);
    t2 = await startTestApp(
      {
        ...limits,
        REDIS_KEY_PREFIX: t1.config.redis.keyPrefix,
        BULLMQ_PREFIX: t1.config.queues.prefix,
        EVENTS_STREAM_NAME: t1.config.events.streamName,
      },
      { databaseUrl: t1.config.database.url },
    );
  });
  afterAll(async () => {
    await t2?.close();
    await t1?.close();
  });

  test('login failures spread over both copies trip the limit on either', async () => {
    const user = await createUser(t1.context.db);
    expect((await loginWith(t1, user.email, 'Wrong-Password-1!')).status).toBe(401);
    expect((await loginWith(t2, user.email, 'Wrong-Password-1!')).status).toBe(401);
    expect((await loginWith(t1, user.email, 'Wrong-Password-1!')).status).toBe(401);
    expectRateLimited(await loginWith(t2, user.email, user.password), 3, [user.password]);
    expectRateLimited(await loginWith(t1, user.email, user.password), 3, [user.password]);
  });

  test('registrations spread over both copies trip the limit on either', async () => {
    expect((await register(t1, 'copy-1@example.com')).status).toBe(201);
    expect((await register(t2, 'copy-2@example.com')).status).toBe(201);
    expectRateLimited(await register(t1, 'copy-3@example.com'), 2, [PASSWORD]);
    expectRateLimited(await register(t2, 'copy-3@example.com'), 2, [PASSWORD]);
  });
});
