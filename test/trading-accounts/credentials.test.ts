// Credentials after the link: who may see them (and the event each reveal leaves), rotation with
// step-up, unlinking with a Kite logout, the daily Kite login, and the expiry of access tokens.
import { call, eventually } from '../helpers/app';
import { enableMfa, signedInUser, streamEvents, type SignedIn } from '../helpers/auth';
import { cliEnvironment, runCli } from '../helpers/cli';
import { startStack, type TestStack } from '../helpers/stack';
import type { Authenticator } from '../mfa/rfc6238';
import { expireAccounts, nextKiteExpiry } from '../../shared/trading-accounts/verification';
import { accountEvents, link, linked, publishedEvents, row, settled, statusChanges } from './flows';

let s: TestStack;
let service: { auth: { Authorization: string }; id: string };
beforeAll(async () => {
  s = await startStack();
  const created = await runCli(['create-service', '--name', 'order-service'], { env: cliEnvironment(s.app) });
  if (created.status !== 0) throw new Error(`create-service failed: ${created.stderr}`);
  const clientId = /client_id=(\S+)/.exec(created.stdout)![1];
  const clientSecret = /client_secret=(\S+)/.exec(created.stdout)![1];
  const token = await call(`${s.app.url}/v1/auth/service-token`, { body: { client_id: clientId, client_secret: clientSecret } });
  service = { auth: { Authorization: `Bearer ${token.body.access_token}` }, id: clientId };
});
afterAll(() => s.close());
afterEach(() => s.kite.reset());

const accountUrl = (id: string, rest = '') => `${s.app.url}/v1/trading-accounts/${id}${rest}`;

async function stepUp(user: SignedIn, authenticator: Authenticator): Promise<string> {
  const r = await call(`${s.app.url}/v1/mfa/totp/verify`, { body: { code: await authenticator.code() }, headers: user.auth });
  if (r.status !== 200) throw new Error(`step-up failed: ${r.status} ${r.text}`);
  return r.body.verification_token;
}

const reveals = async (accountId: string) =>
  (await accountEvents(s, accountId)).filter((e) => e.type === 'trading_account.credentials_revealed');

describe('include_credentials', () => {
  test('without MFA the owner gets 403 saying MFA is needed', async () => {
    const user = await signedInUser(s.app.context.db, s.app.url);
    const account = await linked(s, user, s.kite.addApp());
    const r = await call(accountUrl(account.id, '?include_credentials=true'), { headers: user.auth });
    expect(r.status).toBe(403);
    expect(r.body.detail).toMatch(/MFA/);
    expect(r.text).not.toMatch(/api_secret/);
  });

  test('with MFA: no token 403, bogus token 403, a valid token reveals them once with one event', async () => {
    const user = await signedInUser(s.app.context.db, s.app.url);
    const kiteApp = s.kite.addApp();
    const account = await linked(s, user, kiteApp);
    const authenticator = await enableMfa(s.app.url, user);
    const url = accountUrl(account.id, '?include_credentials=true');

    const none = await call(url, { headers: user.auth });
    expect([none.status, none.body.code ?? none.body.type]).toEqual([403, expect.stringMatching(/verification_required/)]);
    const bogus = await call(url, { headers: { ...user.auth, 'X-Verification-Token': 'bogus' } });
    expect(bogus.status).toBe(403);
    expect(bogus.body.detail).toMatch(/invalid, expired/);

    const token = await stepUp(user, authenticator);
    const r = await call(url, { headers: { ...user.auth, 'X-Verification-Token': token } });
    expect(r.status).toBe(200);
    expect(r.body.credentials).toEqual({ api_key: kiteApp.apiKey, api_secret: kiteApp.apiSecret, access_token: expect.any(String) });
    expect(s.kite.isLive(r.body.credentials.access_token)).toBe(true);
    // Without the flag the same caller sees no credential.
    const plain = await call(accountUrl(account.id), { headers: { ...user.auth, 'X-Verification-Token': token } });
    expect(plain.body.credentials).toBeUndefined();

    const events = await eventually(async () => {
      const found = await reveals(account.id);
      return found.length === 1 && found;
    });
    expect(events[0].payload).toMatchObject({ user_id: user.id, actor_id: user.id, data: { account_id: account.id, by: 'owner' } });
    for (const secret of [kiteApp.apiKey, kiteApp.apiSecret, r.body.credentials.access_token]) expect(events[0].raw).not.toContain(secret);

    const list = await call(`${s.app.url}/v1/trading-accounts?include_credentials=true`, {
      headers: { ...user.auth, 'X-Verification-Token': token },
    });
    expect(list.status).toBe(200);
    expect(list.body.trading_accounts[0].credentials.api_key).toBe(kiteApp.apiKey);
    expect(await eventually(async () => (await reveals(account.id)).length === 2)).toBe(true);
  });

  test('a service principal holding trading_accounts:credentials:read gets any account with credentials', async () => {
    const user = await signedInUser(s.app.context.db, s.app.url);
    const kiteApp = s.kite.addApp();
    const account = await linked(s, user, kiteApp);
    const r = await call(accountUrl(account.id, '?include_credentials=true'), { headers: service.auth });
    expect(r.status).toBe(200);
    expect(r.body.credentials).toMatchObject({ api_key: kiteApp.apiKey, api_secret: kiteApp.apiSecret });
    const [event] = await eventually(async () => {
      const found = await reveals(account.id);
      return found.length === 1 && found;
    });
    expect(event.payload).toMatchObject({ user_id: user.id, actor_id: service.id, data: { account_id: account.id, by: 'service' } });
  });

  test('another user asking for credentials gets 404, even with MFA and a valid token', async () => {
    const owner = await signedInUser(s.app.context.db, s.app.url);
    const account = await linked(s, owner, s.kite.addApp());
    const other = await signedInUser(s.app.context.db, s.app.url);
    const token = await stepUp(other, await enableMfa(s.app.url, other));
    const r = await call(accountUrl(account.id, '?include_credentials=true'), {
      headers: { ...other.auth, 'X-Verification-Token': token },
    });
    expect(r.status).toBe(404);
    expect(await reveals(account.id)).toHaveLength(0);
  });
});

describe('rotation', () => {
  test('with MFA on and no step-up token: 403 and nothing changes', async () => {
    const user = await signedInUser(s.app.context.db, s.app.url);
    const account = await linked(s, user, s.kite.addApp());
    await enableMfa(s.app.url, user);
    const fresh = s.kite.addApp();
    const before = await row(s, account.id);
    const r = await call(accountUrl(account.id, '/rotate-credentials'), {
      headers: user.auth,
      body: { api_key: fresh.apiKey, api_secret: fresh.apiSecret, request_token: s.kite.requestToken(fresh.apiKey) },
    });
    expect(r.status).toBe(403);
    expect(r.body.detail).toMatch(/X-Verification-Token/);
    expect(await row(s, account.id)).toEqual(before);
  });

  test('new key and secret with a step-up token: the old credentials stay in use until the new ones verify', async () => {
    const user = await signedInUser(s.app.context.db, s.app.url);
    const old = s.kite.addApp({ userId: 'OLD001' });
    const account = await linked(s, user, old);
    const token = await stepUp(user, await enableMfa(s.app.url, user));
    const fresh = s.kite.addApp({ userId: 'NEW002' });
    s.kite.script('GET /user/profile', ['hold']);
    const r = await call(accountUrl(account.id, '/rotate-credentials'), {
      headers: { ...user.auth, 'X-Verification-Token': token },
      body: { api_key: fresh.apiKey, api_secret: fresh.apiSecret, request_token: s.kite.requestToken(fresh.apiKey) },
    });
    expect([r.status, r.body]).toEqual([202, { status: 'verifying' }]);
    await s.kite.held('GET /user/profile');
    const during = await call(accountUrl(account.id, '?include_credentials=true'), { headers: service.auth });
    expect(during.body).toMatchObject({ status: 'verifying', credentials: { api_key: old.apiKey, api_secret: old.apiSecret } });
    s.kite.release();

    const after = await settled(s, user, account.id);
    expect(after).toMatchObject({ status: 'active', broker_user_id: 'NEW002' });
    expect(after.api_key_masked.slice(-4)).toBe(fresh.apiKey.slice(-4));
    const revealed = await call(accountUrl(account.id, '?include_credentials=true'), { headers: service.auth });
    expect(revealed.body.credentials).toMatchObject({ api_key: fresh.apiKey, api_secret: fresh.apiSecret });

    const events = await publishedEvents(s, account.id);
    expect(events.filter((e) => e.type === 'trading_account.credentials_updated')).toHaveLength(1);
    expect(statusChanges(events)).toEqual(['pending_verification->active', 'active->verifying', 'verifying->active']);
  });

  test('new credentials that Kite refuses leave the old ones in place', async () => {
    const user = await signedInUser(s.app.context.db, s.app.url);
    const old = s.kite.addApp();
    const account = await linked(s, user, old);
    const r = await call(accountUrl(account.id, '/rotate-credentials'), { headers: user.auth, body: { access_token: 'refusedtoken' } });
    expect(r.status).toBe(202);
    const after = await settled(s, user, account.id);
    expect(after.status).toBe('invalid');
    const revealed = await call(accountUrl(account.id, '?include_credentials=true'), { headers: service.auth });
    expect(revealed.body.credentials.api_key).toBe(old.apiKey);
    expect(s.kite.isLive(revealed.body.credentials.access_token)).toBe(true);
    expect((await row(s, account.id)).pending_credentials_encrypted).toBeNull();
  });

  test('a new api key already linked to another of my accounts is 409', async () => {
    const user = await signedInUser(s.app.context.db, s.app.url);
    const first = s.kite.addApp();
    const second = s.kite.addApp();
    await linked(s, user, first);
    const account = await linked(s, user, second);
    const r = await call(accountUrl(account.id, '/rotate-credentials'), {
      headers: user.auth,
      body: { api_key: first.apiKey, api_secret: first.apiSecret, request_token: s.kite.requestToken(first.apiKey) },
    });
    expect(r.status).toBe(409);
  });
});

test('DELETE: credentials destroyed at once, one unlinked event, and a job logs the Kite session out', async () => {
  const user = await signedInUser(s.app.context.db, s.app.url);
  const kiteApp = s.kite.addApp();
  const account = await linked(s, user, kiteApp);
  const revealed = await call(accountUrl(account.id, '?include_credentials=true'), { headers: service.auth });
  const accessToken = revealed.body.credentials.access_token;

  const r = await call(accountUrl(account.id), { method: 'DELETE', headers: user.auth });
  expect(r.status).toBe(204);
  const stored = await row(s, account.id);
  expect(stored).toMatchObject({ credentials_encrypted: null, pending_credentials_encrypted: null });
  expect(stored.unlinked_at).not.toBeNull();
  expect((await call(accountUrl(account.id), { headers: user.auth })).status).toBe(404);
  expect((await call(`${s.app.url}/v1/trading-accounts`, { headers: user.auth })).body.trading_accounts).toEqual([]);

  await eventually(() => !s.kite.isLive(accessToken));
  expect(s.kite.count('DELETE /session/token', kiteApp.apiKey)).toBe(1);
  const events = await publishedEvents(s, account.id);
  const unlinked = events.filter((e) => e.type === 'trading_account.unlinked');
  expect(unlinked.map((e) => e.payload.data)).toEqual([{ account_id: account.id, broker: 'kite' }]);
  const jobs = await s.app.context.queues.kite.getJobs(['completed']);
  expect(JSON.stringify(jobs.map((j) => j.data))).not.toContain(accessToken);
  // The same key can be linked again once unlinked.
  expect((await link(s, user, kiteApp)).status).toBe(202);
});

describe('daily re-login', () => {
  test('an expired account gets a login URL with a single-use state, and POST /session renews it', async () => {
    const user = await signedInUser(s.app.context.db, s.app.url);
    const kiteApp = s.kite.addApp();
    const account = await linked(s, user, kiteApp);
    s.kite.expireTokens(kiteApp.apiKey);
    await s.app.context
      .db('trading_accounts')
      .where({ id: account.id })
      .update({ access_token_expires_at: new Date(Date.now() - 1000) });
    await expireAccounts(s.app.context);
    expect((await call(accountUrl(account.id, '/status'), { headers: user.auth })).body.status).toBe('expired');

    const url = await call(accountUrl(account.id, '/kite-login-url'), { headers: user.auth });
    expect(url.status).toBe(200);
    const login = new URL(url.body.login_url);
    expect(`${login.origin}${login.pathname}`).toBe(`${s.kite.url}/connect/login`);
    expect(login.searchParams.get('api_key')).toBe(kiteApp.apiKey);
    expect(login.searchParams.get('v')).toBe('3');
    const state = new URLSearchParams(login.searchParams.get('redirect_params')!).get('state');
    expect(state).toBe(url.body.state);

    const requestToken = s.kite.requestToken(kiteApp.apiKey);
    const renewed = await call(accountUrl(account.id, '/session'), { headers: user.auth, body: { request_token: requestToken, state } });
    expect([renewed.status, renewed.body]).toEqual([202, { status: 'verifying' }]);
    const after = await settled(s, user, account.id);
    expect(after).toMatchObject({ status: 'active', last_error: null });
    expect(Date.parse(after.access_token_expires_at)).toBeGreaterThan(Date.now());
    const revealed = await call(accountUrl(account.id, '?include_credentials=true'), { headers: service.auth });
    expect(revealed.body.credentials).toMatchObject({ api_key: kiteApp.apiKey, api_secret: kiteApp.apiSecret });
    expect(s.kite.isLive(revealed.body.credentials.access_token)).toBe(true);

    const again = await call(accountUrl(account.id, '/session'), {
      headers: user.auth,
      body: { request_token: s.kite.requestToken(kiteApp.apiKey), state },
    });
    expect(again.status).toBe(400);
    expect(again.body.errors).toEqual([expect.objectContaining({ field: 'state' })]);
    const events = await publishedEvents(s, account.id);
    expect(statusChanges(events)).toEqual(['pending_verification->active', 'active->expired', 'expired->verifying', 'verifying->active']);
  });

  test("a state is bound to its account: another account's state is refused", async () => {
    const user = await signedInUser(s.app.context.db, s.app.url);
    const a = await linked(s, user, s.kite.addApp());
    const bApp = s.kite.addApp();
    const b = await linked(s, user, bApp);
    const { state } = (await call(accountUrl(a.id, '/kite-login-url'), { headers: user.auth })).body;
    const r = await call(accountUrl(b.id, '/session'), {
      headers: user.auth,
      body: { request_token: s.kite.requestToken(bApp.apiKey), state },
    });
    expect(r.status).toBe(400);
    expect((await row(s, b.id)).status).toBe('active');
  });
});

describe('expiry', () => {
  test('the expiry job at a faked clock marks exactly the accounts past their expiry, one event each', async () => {
    const user = await signedInUser(s.app.context.db, s.app.url);
    const due = await linked(s, user, s.kite.addApp());
    const later = await linked(s, user, s.kite.addApp());
    const failed = await link(s, user, s.kite.addApp(), { access_token: 'refused' });
    await settled(s, user, failed.body.id);
    // 06:01 IST after the next expiry: every token issued now has ended by then.
    const clock = new Date(nextKiteExpiry(new Date()).getTime() + 60_000);
    await s.app.context
      .db('trading_accounts')
      .where({ id: later.id })
      .update({ access_token_expires_at: new Date(clock.getTime() + 3600_000) });

    await expireAccounts(s.app.context, clock);
    await expireAccounts(s.app.context, clock);
    expect((await row(s, due.id)).status).toBe('expired');
    expect((await row(s, later.id)).status).toBe('active');
    expect((await row(s, failed.body.id)).status).toBe('invalid');
    expect(statusChanges(await publishedEvents(s, due.id))).toEqual(['pending_verification->active', 'active->expired']);
    expect(statusChanges(await publishedEvents(s, later.id))).toEqual(['pending_verification->active']);
  });

  test('the expiry job is scheduled in Asia/Kolkata time, at 06:01 there', async () => {
    const scheduler = await s.app.context.queues.kite.getJobScheduler('expire-trading-accounts');
    expect(scheduler).toMatchObject({ tz: 'Asia/Kolkata', pattern: s.app.config.tradingAccounts.expirySchedule });
    const next = new Date(scheduler!.next!);
    const ist = new Intl.DateTimeFormat('en-GB', { timeZone: 'Asia/Kolkata', hour: '2-digit', minute: '2-digit' }).format(next);
    expect(ist).toBe('06:01');
  });
});

test('every trading-account event type reached the stream, none with a secret, a token or an api key', async () => {
  const stream = await eventually(async () => {
    const rows = await s.app.context.db('events').where('type', 'like', 'trading_account.%').count<{ count: string }[]>('id as count');
    const all = (await streamEvents(s.app.context.redis, s.app.config.events.streamName)).filter((e) =>
      e.type.startsWith('trading_account.'),
    );
    return all.length === Number(rows[0].count) && all;
  });
  const types = new Set(stream.map((e) => e.type));
  for (const type of [
    'trading_account.linked',
    'trading_account.unlinked',
    'trading_account.credentials_updated',
    'trading_account.status_changed',
    'trading_account.credentials_revealed',
  ]) {
    expect(types).toContain(type);
  }
  const raw = stream.map((e) => e.raw).join('\n');
  const secrets = s.kite.secrets();
  expect(secrets.length).toBeGreaterThan(20);
  for (const secret of secrets) expect(raw).not.toContain(secret);
  for (const secret of secrets) expect(s.app.logs.text).not.toContain(secret);
});
