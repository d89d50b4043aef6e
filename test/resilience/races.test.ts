// Races: many requests at once on one single-use thing (a refresh token, a backup code, a reset or
// verification token, an MFA challenge, an OAuth state), on one rate limit, on one permission and
// on one Kite account. Exactly the allowed number win, the others get a clean 4xx, and what is
// stored after is what one winner would have left.
import { call, eventually, startTestApp, type Reply, type TestApp } from '../helpers/app';
import { startStack, type TestStack } from '../helpers/stack';
import { createUser } from '../helpers/users';
import { login, signedInUser } from '../helpers/auth';
import { startFakeGoogle, type FakeGoogle } from '../helpers/oidc-provider';
import { googleEnvironment, startSignIn } from '../helpers/google';
import { link } from '../trading-accounts/flows';
import { Authenticator } from '../mfa/rfc6238';

jest.setTimeout(90_000);

const N = 50;
const many = (n: number, send: () => Promise<Reply>) => Promise.all(Array.from({ length: n }, send));
const statuses = (answers: Reply[]) => answers.map((a) => a.status).sort((a, b) => a - b);
const count = (answers: Reply[], status: number) => answers.filter((a) => a.status === status).length;

let google: FakeGoogle;
let s: TestStack;
let t: TestApp;
beforeAll(async () => {
  google = await startFakeGoogle();
  s = await startStack({
    ...googleEnvironment(google),
    EMAIL_LINK_BASE_URL: 'https://app.example',
    RATELIMIT_PASSWORD_RESET_ATTEMPTS: '100',
    RATELIMIT_REGISTER_ATTEMPTS: '100',
  });
  t = s.app;
});
afterAll(async () => {
  await s.close();
  await google.close();
});

const refresh = (app: TestApp, token: string) => call(`${app.url}/v1/auth/refresh`, { body: { refresh_token: token } });

test(`${N} concurrent refreshes of one token within the grace window all get the one successor pair`, async () => {
  const user = await login(t.url, await createUser(t.context.db));
  // With the default refresh limit (10 a minute): the copies of the one rotation count once.
  expect(t.config.rateLimits.refresh.attempts).toBeLessThan(N);
  const answers = await many(N, () => refresh(t, user.refreshToken));
  expect(statuses(answers)).toEqual(Array(N).fill(200));
  expect(new Set(answers.map((a) => a.body.refresh_token)).size).toBe(1);
  expect(new Set(answers.map((a) => a.body.access_token)).size).toBe(1);
  // One rotation: the presented token and its one successor, the session alive and the pair working.
  const rows = await t.context.db('refresh_tokens').where({ session_id: user.sessionId });
  expect(rows).toHaveLength(2);
  expect((await t.context.db('sessions').where({ id: user.sessionId }).first())!.revoked_at).toBeNull();
  expect((await refresh(t, answers[0].body.refresh_token)).status).toBe(200);
});

test(`${N} concurrent refreshes of one token without a grace window: one wins, the others are reuse and the family is revoked`, async () => {
  const strict = await startTestApp({ REFRESH_TOKEN_REUSE_INTERVAL_SECONDS: '0' });
  try {
    const user = await login(strict.url, await createUser(strict.context.db));
    const answers = await many(N, () => refresh(strict, user.refreshToken));
    expect(statuses(answers)).toEqual([200, ...Array(N - 1).fill(401)]);
    for (const a of answers.filter((x) => x.status === 401)) expect(a.body.type).toMatch(/invalid_refresh_token$/);
    const winner = answers.find((a) => a.status === 200)!;
    expect(await strict.context.db('refresh_tokens').where({ session_id: user.sessionId }).count({ n: '*' })).toEqual([{ n: 2 }]);
    const session = (await strict.context.db('sessions').where({ id: user.sessionId }).first())!;
    expect(session.revoked_reason).toBe('refresh_token_reuse');
    // Revoked once, however many copies were presented.
    expect(await strict.context.db('events').where({ type: 'session.revoked', user_id: user.id }).count({ n: '*' })).toEqual([{ n: 1 }]);
    expect((await refresh(strict, winner.body.refresh_token)).status).toBe(401);
    expect(
      (await call(`${strict.url}/v1/auth/sessions`, { headers: { Authorization: `Bearer ${winner.body.access_token}` } })).status,
    ).toBe(401);
  } finally {
    await strict.close();
  }
});

test(`${N} concurrent wrong-password logins on one account get exactly the limit's verdicts: 5 × 401, then 429`, async () => {
  const user = await createUser(t.context.db);
  const limit = t.config.rateLimits.login.attempts;
  expect(limit).toBe(5);
  const answers = await many(N, () => call(`${t.url}/v1/auth/login`, { body: { email: user.email, password: 'Wrong-Passw0rd-!' } }));
  expect(statuses(answers)).toEqual([...Array(limit).fill(401), ...Array(N - limit).fill(429)]);
  for (const a of answers) expect(a.headers.get('content-type')).toMatch(/problem\+json/);
  for (const a of answers.filter((x) => x.status === 429)) expect(Number(a.headers.get('retry-after'))).toBeGreaterThan(0);
  // The pair is locked: even the right password waits, and no session was made.
  expect((await call(`${t.url}/v1/auth/login`, { body: { email: user.email, password: user.password } })).status).toBe(429);
  expect(await t.context.db('sessions').where({ user_id: user.id }).count({ n: '*' })).toEqual([{ n: 0 }]);
});

test('concurrent grants and revocations of one permission leave the check equal to the database', async () => {
  const admin = await signedInUser(t.context.db, t.url, { roles: ['admin'] });
  const viewer = await signedInUser(t.context.db, t.url, { roles: ['viewer'] });
  const permission = 'alerts:write';
  const grant = () => call(`${t.url}/v1/authz/permissions`, { body: { user_id: viewer.id, permission }, headers: admin.auth });
  const check = () => call(`${t.url}/v1/authz/check`, { body: { permission }, headers: viewer.auth });
  for (let round = 0; round < 8; round++) {
    const first = await grant();
    expect(first.status).toBe(201);
    const revoke = () => call(`${t.url}/v1/authz/permissions/${first.body.id}`, { method: 'DELETE', headers: admin.auth });
    // Checks in the middle fill the cache while the grants and revocations change it.
    const answers = await Promise.all([grant(), revoke(), check(), grant(), check(), revoke(), check()]);
    for (const a of answers) expect(a.status).toBeLessThan(500);
    const granted = await t.context
      .db('user_permissions')
      .join('permissions', 'permissions.id', 'user_permissions.permission_id')
      .where('user_permissions.user_id', viewer.id)
      .where('permissions.name', permission)
      .first('user_permissions.id');
    expect((await check()).body).toMatchObject({ allowed: !!granted, permission });
    if (granted)
      expect((await call(`${t.url}/v1/authz/permissions/${granted.id}`, { method: 'DELETE', headers: admin.auth })).status).toBe(204);
    expect((await check()).body.allowed).toBe(false);
  }
});

test('two concurrent links of one Kite account by one user: one 202, one 409, one row', async () => {
  const user = await signedInUser(t.context.db, t.url);
  const kiteApp = s.kite.addApp();
  const answers = await Promise.all([link(s, user, kiteApp), link(s, user, kiteApp)]);
  expect(statuses(answers)).toEqual([202, 409]);
  expect(answers.find((a) => a.status === 409)!.headers.get('content-type')).toMatch(/problem\+json/);
  expect(await t.context.db('trading_accounts').where({ user_id: user.id }).count({ n: '*' })).toEqual([{ n: 1 }]);
  const id = answers.find((a) => a.status === 202)!.body.id;
  await eventually(async () => (await t.context.db('trading_accounts').where({ id }).first())?.status === 'active', { timeoutMs: 20_000 });
});

async function mfaUser(): Promise<{ user: Awaited<ReturnType<typeof signedInUser>>; app: Authenticator; backupCodes: string[] }> {
  const user = await signedInUser(t.context.db, t.url);
  const setup = await call(`${t.url}/v1/mfa/totp/setup`, { body: {}, headers: user.auth });
  const app = new Authenticator(setup.body.secret);
  const enabled = await call(`${t.url}/v1/mfa/totp/enable`, { body: { code: await app.code() }, headers: user.auth });
  expect(enabled.status).toBe(200);
  return { user, app, backupCodes: enabled.body.backup_codes };
}

const challenge = async (user: { email: string; password: string }): Promise<string> => {
  const r = await call(`${t.url}/v1/auth/login`, { body: { email: user.email, password: user.password } });
  expect(r.body.mfa_required).toBe(true);
  return r.body.mfa_token;
};
const verify = (mfaToken: string, code: string) => call(`${t.url}/v1/auth/mfa/verify`, { body: { mfa_token: mfaToken, code } });
const sessionsOf = async (userId: string) => Number((await t.context.db('sessions').where({ user_id: userId }).count({ n: '*' }))[0].n);

test('one backup code used on several challenges at once signs in once and is spent once', async () => {
  const { user, backupCodes } = await mfaUser();
  const before = await sessionsOf(user.id);
  // Within the wrong-code limit, so every loser is refused for the spent code itself.
  const tokens = await Promise.all(Array.from({ length: 4 }, () => challenge(user)));
  const answers = await Promise.all(tokens.map((token) => verify(token, backupCodes[0])));
  expect(statuses(answers)).toEqual([200, 401, 401, 401]);
  expect(await sessionsOf(user.id)).toBe(before + 1);
  expect(await t.context.db('mfa_backup_codes').where({ user_id: user.id }).whereNotNull('used_at').count({ n: '*' })).toEqual([{ n: 1 }]);
});

test(`one MFA challenge answered ${N} times at once with its right code starts one session`, async () => {
  const { user, app } = await mfaUser();
  const before = await sessionsOf(user.id);
  const token = await challenge(user);
  // A later time step than the one enable spent.
  const code = await app.code();
  const answers = await many(N, () => verify(token, code));
  expect(count(answers, 200)).toBe(1);
  for (const a of answers.filter((x) => x.status !== 200)) expect(a.body.type).toMatch(/(invalid_mfa_token|invalid_code|rate_limited)$/);
  expect(await sessionsOf(user.id)).toBe(before + 1);
  // One sign-in recorded besides the password login that made the test user.
  expect(await t.context.db('events').where({ type: 'user.login', user_id: user.id }).count({ n: '*' })).toEqual([{ n: 2 }]);
});

test(`one password reset token used ${N} times at once sets one password`, async () => {
  const user = await login(t.url, await createUser(t.context.db));
  expect((await call(`${t.url}/v1/auth/password/reset-request`, { body: { email: user.email } })).status).toBe(202);
  const mail = await s.smtp.waitFor((m) => m.to.includes(user.email) && m.subject === 'Reset your password', 20_000);
  const token = /https:\/\/app\.example\/reset-password\?token=([A-Za-z0-9_-]+)/.exec(mail.text)![1];
  const passwords = Array.from({ length: N }, (_, i) => `Race-Reset-Passw0rd-${i}!`);
  const answers = await Promise.all(passwords.map((p) => call(`${t.url}/v1/auth/password/reset`, { body: { token, new_password: p } })));
  expect(count(answers, 204)).toBe(1);
  expect(count(answers, 400)).toBe(N - 1);
  for (const a of answers.filter((x) => x.status === 400)) expect(a.body.type).toMatch(/invalid_token$/);
  // The winner's password is the one stored, and it works.
  const won = passwords[answers.findIndex((a) => a.status === 204)];
  expect((await call(`${t.url}/v1/auth/login`, { body: { email: user.email, password: won } })).status).toBe(200);
  expect(await t.context.db('events').where({ type: 'password.reset_completed', user_id: user.id }).count({ n: '*' })).toEqual([{ n: 1 }]);
});

test(`one OAuth state brought back ${N} times at once signs in once`, async () => {
  const account = google.addAccount({});
  const started = await startSignIn(t);
  const back = await google.authorize(started.body.authorization_url, account.sub);
  const answers = await many(N, () =>
    call(`${t.url}/v1/auth/oauth/google/callback`, { body: { code: back.query.code, state: back.query.state } }),
  );
  expect(count(answers, 200)).toBe(1);
  expect(count(answers, 400)).toBe(N - 1);
  for (const a of answers.filter((x) => x.status === 400)) expect(a.body.type).toMatch(/invalid_state$/);
  const users = await t.context.db('users').where({ email: account.email });
  expect(users).toHaveLength(1);
  expect(await sessionsOf(users[0].id)).toBe(1);
  expect(await t.context.db('auth_providers').where({ user_id: users[0].id }).count({ n: '*' })).toEqual([{ n: 1 }]);
});

test(`one email verification token used ${N} times at once verifies once`, async () => {
  const email = `race-verify-${Date.now()}@example.com`;
  const registered = await call(`${t.url}/v1/auth/register`, { body: { email, password: 'Verify-Passw0rd-1!', name: 'Asha Rao' } });
  expect(registered.status).toBe(201);
  const mail = await s.smtp.waitFor((m) => m.to.includes(email) && m.subject === 'Confirm your email address', 20_000);
  const token = /https:\/\/app\.example\/verify-email\?token=([A-Za-z0-9_-]+)/.exec(mail.text)![1];
  const answers = await many(N, () => call(`${t.url}/v1/auth/verify-email`, { body: { token } }));
  expect(count(answers, 200)).toBe(1);
  expect(count(answers, 400)).toBe(N - 1);
  expect(await t.context.db('users').where({ email }).first()).toMatchObject({ status: 'active', email_verified: true });
  expect(await t.context.db('events').where({ type: 'user.email_verified', user_id: registered.body.user_id }).count({ n: '*' })).toEqual([
    { n: 1 },
  ]);
});
