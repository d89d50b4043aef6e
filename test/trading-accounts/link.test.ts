// Linking a Kite Connect account against the fake Kite: the verification job and each way it can
// end, what the rows hold (envelopes only, one data key each, bound to the row), and the reads.
import crypto from 'node:crypto';
import { readMasterKey } from '../../shared/crypto/keys';
import { call, eventually } from '../helpers/app';
import { signedInUser } from '../helpers/auth';
import { createUser } from '../helpers/users';
import { login } from '../helpers/auth';
import { startStack, type TestStack } from '../helpers/stack';
import { accountEvents, link, linked, publishedEvents, row, settled, statusChanges } from './flows';

let s: TestStack;
beforeAll(async () => {
  s = await startStack();
});
afterAll(() => s.close());
afterEach(() => s.kite.reset());

test('link with a request token: 202 pending_verification, then active with the broker user id and name', async () => {
  const user = await signedInUser(s.app.context.db, s.app.url);
  const kiteApp = s.kite.addApp({ userId: 'ZX1234', userName: 'Asha Rao' });
  const r = await link(s, user, kiteApp, { request_token: s.kite.requestToken(kiteApp.apiKey) }, { nickname: 'Main' });
  expect(r.status).toBe(202);
  expect(r.body).toMatchObject({ broker: 'kite', status: 'pending_verification', nickname: 'Main', broker_user_id: null });
  expect(r.body.api_key_masked).toMatch(/^\*+.{4}$/);
  expect(r.body.api_key_masked.slice(-4)).toBe(kiteApp.apiKey.slice(-4));
  expect(r.body.credentials).toBeUndefined();

  const account = await settled(s, user, r.body.id);
  expect(account).toMatchObject({ status: 'active', broker_user_id: 'ZX1234', broker_user_name: 'Asha Rao', last_error: null });
  expect(Date.parse(account.last_verified_at)).toBeGreaterThan(Date.now() - 60_000);
  // Kite's tokens end at 06:00 Asia/Kolkata: 00:30 UTC, within the next day.
  const expires = new Date(account.access_token_expires_at);
  expect(expires.getUTCHours() * 60 + expires.getUTCMinutes()).toBe(30);
  expect(expires.getTime() - Date.now()).toBeLessThanOrEqual(24 * 3600 * 1000);
  expect(s.kite.count('POST /session/token', kiteApp.apiKey)).toBe(1);
  expect(s.kite.count('GET /user/profile', kiteApp.apiKey)).toBe(1);

  const status = await call(`${s.app.url}/v1/trading-accounts/${r.body.id}/status`, { headers: user.auth });
  expect(status.status).toBe(200);
  expect(status.body).toMatchObject({ status: 'active', broker_user_id: 'ZX1234', last_error: null });
  const list = await call(`${s.app.url}/v1/trading-accounts`, { headers: user.auth });
  expect(list.body.trading_accounts.map((a: { id: string }) => a.id)).toEqual([r.body.id]);
  const me = await call(`${s.app.url}/v1/users/me`, { headers: user.auth });
  expect(me.body.trading_accounts[0]).toMatchObject({ id: r.body.id, status: 'active' });

  const events = await publishedEvents(s, r.body.id);
  expect(events.filter((e) => e.type === 'trading_account.linked')).toHaveLength(1);
  expect(events.find((e) => e.type === 'trading_account.linked')!.payload.data).toEqual({ account_id: r.body.id, broker: 'kite' });
  expect(statusChanges(events)).toEqual(['pending_verification->active']);
});

test('link with an access token: active without an exchange', async () => {
  const user = await signedInUser(s.app.context.db, s.app.url);
  const kiteApp = s.kite.addApp();
  const r = await link(s, user, kiteApp, { access_token: s.kite.accessToken(kiteApp.apiKey) });
  expect(r.status).toBe(202);
  expect((await settled(s, user, r.body.id)).status).toBe('active');
  expect(s.kite.count('POST /session/token', kiteApp.apiKey)).toBe(0);
});

test('a bad checksum (wrong api secret) ends invalid, with last_error and no retry', async () => {
  const user = await signedInUser(s.app.context.db, s.app.url);
  const kiteApp = s.kite.addApp();
  const r = await link(s, user, { ...kiteApp, apiSecret: 'not-the-secret' });
  const account = await settled(s, user, r.body.id);
  expect(account.status).toBe('invalid');
  expect(account.last_error).toMatch(/TokenException/);
  expect(account.last_error).not.toContain('not-the-secret');
  expect(s.kite.count('POST /session/token', kiteApp.apiKey)).toBe(1);
});

test('503 twice then success: active', async () => {
  const user = await signedInUser(s.app.context.db, s.app.url);
  const kiteApp = s.kite.addApp();
  s.kite.script('POST /session/token', [{ status: 503 }, { status: 503 }]);
  const r = await link(s, user, kiteApp);
  expect((await settled(s, user, r.body.id)).status).toBe('active');
  expect(s.kite.count('POST /session/token', kiteApp.apiKey)).toBe(3);
});

test('permanent 5xx: error with last_error after KITE_API_MAX_RETRIES attempts', async () => {
  const user = await signedInUser(s.app.context.db, s.app.url);
  const kiteApp = s.kite.addApp();
  s.kite.always('POST /session/token', { status: 502 });
  const r = await link(s, user, kiteApp);
  const account = await settled(s, user, r.body.id);
  expect(account.status).toBe('error');
  expect(account.last_error).toMatch(/502/);
  expect(s.kite.count('POST /session/token', kiteApp.apiKey)).toBe(s.app.config.kite.maxRetries);
});

test('timeouts: error with last_error', async () => {
  const user = await signedInUser(s.app.context.db, s.app.url);
  const kiteApp = s.kite.addApp();
  s.kite.always('GET /user/profile', 'timeout');
  const r = await link(s, user, kiteApp, { access_token: s.kite.accessToken(kiteApp.apiKey) });
  const account = await settled(s, user, r.body.id, 20_000);
  expect(account.status).toBe('error');
  expect(account.last_error).toMatch(/could not be reached/);
  expect(s.kite.count('GET /user/profile', kiteApp.apiKey)).toBe(s.app.config.kite.maxRetries);
});

test('429 is honoured: the call waits for Retry-After, then succeeds', async () => {
  const user = await signedInUser(s.app.context.db, s.app.url);
  const kiteApp = s.kite.addApp();
  s.kite.script('GET /user/profile', [{ status: 429, retryAfter: 1 }]);
  const r = await link(s, user, kiteApp, { access_token: s.kite.accessToken(kiteApp.apiKey) });
  expect((await settled(s, user, r.body.id)).status).toBe('active');
  const calls = s.kite.requests.filter((q) => q.route === 'GET /user/profile' && q.apiKey === kiteApp.apiKey);
  expect(calls).toHaveLength(2);
  expect(calls[1].at - calls[0].at).toBeGreaterThanOrEqual(950);
});

test('a request token spent by an attempt whose answer was lost: the retry ends in error, not invalid', async () => {
  const user = await signedInUser(s.app.context.db, s.app.url);
  const kiteApp = s.kite.addApp();
  s.kite.script('POST /session/token', ['lose-answer']);
  const r = await link(s, user, kiteApp);
  const account = await settled(s, user, r.body.id);
  expect(account.status).toBe('error');
  expect(account.last_error).toMatch(/already used/);
  expect(s.kite.count('POST /session/token', kiteApp.apiKey)).toBe(2);
});

test('an invalid access token ends invalid', async () => {
  const user = await signedInUser(s.app.context.db, s.app.url);
  const kiteApp = s.kite.addApp();
  const r = await link(s, user, kiteApp, { access_token: 'nottherightone' });
  expect((await settled(s, user, r.body.id)).status).toBe('invalid');
});

test('the same api key twice for one user is 409, also when two links race; another user may link it', async () => {
  const user = await signedInUser(s.app.context.db, s.app.url);
  const kiteApp = s.kite.addApp();
  await linked(s, user, kiteApp);
  const again = await link(s, user, kiteApp);
  expect(again.status).toBe(409);
  expect(again.headers.get('content-type')).toMatch(/problem\+json/);

  const racer = await signedInUser(s.app.context.db, s.app.url);
  const raced = s.kite.addApp();
  const answers = await Promise.all([1, 2, 3, 4].map(() => link(s, racer, raced)));
  expect(answers.map((a) => a.status).sort()).toEqual([202, 409, 409, 409]);
  expect(await s.app.context.db('trading_accounts').where({ user_id: racer.id })).toHaveLength(1);

  const other = await signedInUser(s.app.context.db, s.app.url);
  expect((await link(s, other, kiteApp)).status).toBe(202);
});

test('an unverified user gets 403 on link and nothing is stored', async () => {
  const created = await createUser(s.app.context.db, { status: 'pending_verification' });
  await s.app.context.db('users').where({ id: created.id }).update({ email_verified: false });
  const user = await login(s.app.url, created);
  const r = await link(s, user, s.kite.addApp());
  expect(r.status).toBe(403);
  expect(r.body.detail).toMatch(/[Vv]erify your email/);
  expect(await s.app.context.db('trading_accounts').where({ user_id: created.id })).toHaveLength(0);
});

test('bad input is a 400 naming the field; both tokens or none are refused', async () => {
  const user = await signedInUser(s.app.context.db, s.app.url);
  const kiteApp = s.kite.addApp();
  const none = await link(s, user, kiteApp, {});
  expect(none.status).toBe(400);
  expect(none.body.errors).toEqual([expect.objectContaining({ field: 'request_token' })]);
  const both = await link(s, user, kiteApp, { request_token: 'abc', access_token: 'def' });
  expect(both.status).toBe(400);
  const broker = await link(s, user, kiteApp, undefined, { broker: 'upstox' });
  expect(broker.status).toBe(400);
  expect(broker.body.errors).toEqual([expect.objectContaining({ field: 'broker' })]);
  expect(await s.app.context.db('trading_accounts').where({ user_id: user.id })).toHaveLength(0);
});

test("another user's account is 404 on every route", async () => {
  const owner = await signedInUser(s.app.context.db, s.app.url);
  const account = await linked(s, owner, s.kite.addApp());
  const other = await signedInUser(s.app.context.db, s.app.url);
  const base = `${s.app.url}/v1/trading-accounts/${account.id}`;
  const attempts = [
    call(base, { headers: other.auth }),
    call(`${base}?include_credentials=true`, { headers: other.auth }),
    call(`${base}/status`, { headers: other.auth }),
    call(base, { method: 'PATCH', headers: other.auth, body: { nickname: 'mine' } }),
    call(base, { method: 'DELETE', headers: other.auth }),
    call(`${base}/verify`, { method: 'POST', headers: other.auth }),
    call(`${base}/rotate-credentials`, { headers: other.auth, body: { request_token: 'abc' } }),
    call(`${base}/kite-login-url`, { headers: other.auth }),
    call(`${base}/session`, { headers: other.auth, body: { request_token: 'abc', state: 'xyz' } }),
  ];
  for (const r of await Promise.all(attempts)) expect([r.status, r.body.status]).toEqual([404, 404]);
  expect((await row(s, account.id)).nickname).toBeNull();
});

test('PATCH changes nickname and preferences, never credentials', async () => {
  const user = await signedInUser(s.app.context.db, s.app.url);
  const account = await linked(s, user, s.kite.addApp());
  const url = `${s.app.url}/v1/trading-accounts/${account.id}`;
  const r = await call(url, { method: 'PATCH', headers: user.auth, body: { nickname: 'Scalping', preferences: { product: 'MIS' } } });
  expect(r.status).toBe(200);
  expect(r.body).toMatchObject({ nickname: 'Scalping', preferences: { product: 'MIS' }, status: 'active' });
  const refused = await call(url, { method: 'PATCH', headers: user.auth, body: { api_key: 'other' } });
  expect(refused.status).toBe(400);
  expect(refused.body.errors).toEqual([expect.objectContaining({ field: 'api_key' })]);
});

test('POST /verify: 202 verifying, one job for a double click, then active again', async () => {
  const user = await signedInUser(s.app.context.db, s.app.url);
  const kiteApp = s.kite.addApp();
  const account = await linked(s, user, kiteApp);
  const before = s.kite.count('GET /user/profile', kiteApp.apiKey);
  s.kite.script('GET /user/profile', ['hold']);
  const url = `${s.app.url}/v1/trading-accounts/${account.id}/verify`;
  const [a, b] = await Promise.all([call(url, { method: 'POST', headers: user.auth }), call(url, { method: 'POST', headers: user.auth })]);
  expect([a.status, a.body, b.status, b.body]).toEqual([202, { status: 'verifying' }, 202, { status: 'verifying' }]);
  await s.kite.held('GET /user/profile');
  s.kite.release();
  expect((await settled(s, user, account.id)).status).toBe('active');
  expect(s.kite.count('GET /user/profile', kiteApp.apiKey)).toBe(before + 1);
  const events = await publishedEvents(s, account.id);
  expect(statusChanges(events)).toEqual(['pending_verification->active', 'active->verifying', 'verifying->active']);
});

test('verifying credentials whose token Kite ended marks the account expired', async () => {
  const user = await signedInUser(s.app.context.db, s.app.url);
  const kiteApp = s.kite.addApp();
  const account = await linked(s, user, kiteApp);
  s.kite.expireTokens(kiteApp.apiKey);
  await call(`${s.app.url}/v1/trading-accounts/${account.id}/verify`, { method: 'POST', headers: user.auth });
  expect((await settled(s, user, account.id)).status).toBe('expired');
});

test('rows hold envelopes only: no plaintext secret or token, a data key per value, bound to the row', async () => {
  const user = await signedInUser(s.app.context.db, s.app.url);
  const first = s.kite.addApp();
  const second = s.kite.addApp();
  const a = await linked(s, user, first);
  const b = await linked(s, user, second);
  const rowA = await row(s, a.id);
  const rowB = await row(s, b.id);
  const dump = JSON.stringify(await s.app.context.db('trading_accounts').where({ user_id: user.id }));
  for (const secret of [first.apiKey, first.apiSecret, second.apiKey, second.apiSecret]) expect(dump).not.toContain(secret);
  const accessToken = JSON.parse(
    s.app.context.kms.decrypt(rowA.credentials_encrypted, `trading_accounts.credentials_encrypted:${a.id}`),
  ).access_token;
  expect(s.kite.isLive(accessToken)).toBe(true);
  expect(dump).not.toContain(accessToken);

  // v1.<key id>.<wrapped data key>.<body>: unwrapped with the master key, each account's data key is its own.
  const dataKeyOf = (envelope: string) => {
    const [version, keyId, wrapped] = envelope.split('.');
    const sealed = Buffer.from(wrapped, 'base64url');
    const decipher = crypto.createDecipheriv('aes-256-gcm', readMasterKey(s.app.config.kms.keyPath), sealed.subarray(0, 12));
    decipher.setAAD(Buffer.from(`${version}.${keyId}`));
    decipher.setAuthTag(sealed.subarray(12, 28));
    return Buffer.concat([decipher.update(sealed.subarray(28)), decipher.final()]).toString('hex');
  };
  const keys = [rowA.credentials_encrypted, rowB.credentials_encrypted].map(dataKeyOf);
  expect(keys[0]).toHaveLength(64);
  expect(keys[0]).not.toEqual(keys[1]);

  // A ciphertext copied to another row does not decrypt there: reading it fails, nothing leaks.
  await s.app.context.db('trading_accounts').where({ id: b.id }).update({ credentials_encrypted: rowA.credentials_encrypted });
  expect(() => s.app.context.kms.decrypt(rowA.credentials_encrypted, `trading_accounts.credentials_encrypted:${b.id}`)).toThrow(
    /does not decrypt/,
  );
  const verify = await call(`${s.app.url}/v1/trading-accounts/${b.id}/verify`, { method: 'POST', headers: user.auth });
  expect(verify.status).toBe(202);
  const failed = await settled(s, user, b.id);
  expect(failed).toMatchObject({ status: 'error', last_error: expect.stringMatching(/cannot be read/) });

  // An envelope that no longer opens does not keep its owner from unlinking the account.
  const unlinked = await call(`${s.app.url}/v1/trading-accounts/${b.id}`, { method: 'DELETE', headers: user.auth });
  expect(unlinked.status).toBe(204);
  expect(await row(s, b.id)).toMatchObject({ credentials_encrypted: null, unlinked_at: expect.any(Date) });
});

test('no secret or token in any event, job payload or log line', async () => {
  const user = await signedInUser(s.app.context.db, s.app.url);
  const kiteApp = s.kite.addApp();
  const account = await linked(s, user, kiteApp);
  const stored = await row(s, account.id);
  const { access_token } = JSON.parse(
    s.app.context.kms.decrypt(stored.credentials_encrypted, `trading_accounts.credentials_encrypted:${account.id}`),
  );
  const events = await eventually(async () => {
    const found = await accountEvents(s, account.id);
    return found.length >= 2 && found;
  });
  const jobs = await s.app.context.queues.kite.getJobs(['completed', 'waiting', 'delayed', 'active', 'failed']);
  const haystack = [JSON.stringify(events), JSON.stringify(jobs.map((j) => j.data)), s.app.logs.text].join('\n');
  for (const secret of [kiteApp.apiKey, kiteApp.apiSecret, access_token]) expect(haystack).not.toContain(secret);
  expect(jobs.find((j) => j.data.accountId === account.id)?.id).toBe(`kite-verify-${account.id}-1`);
});
