// The Kite client on its own, against the fake Kite: the checksum, Kite's envelopes parsed in one
// place, what is retried and what is not, and errors that never carry a credential. Plus the
// expiry instant of Kite's access tokens.
import { createKiteClient, KiteError, sessionChecksum } from '../../shared/trading-accounts/kite-client';
import { nextKiteExpiry } from '../../shared/trading-accounts/verification';
import { maskApiKey } from '../../shared/trading-accounts/credentials';
import { startFakeKite, type FakeKite } from '../helpers/kite';

let kite: FakeKite;
beforeAll(async () => {
  kite = await startFakeKite();
});
afterAll(() => kite.close());
afterEach(() => kite.reset());

const client = () =>
  createKiteClient({
    kite: { baseUrl: kite.url, timeoutMs: 1000, maxRetries: 3 },
    tradingAccounts: {
      loginUrl: `${kite.url}/connect/login`,
      requestsPerSecond: 10,
      retryBackoffMs: 10,
      expirySchedule: '',
      jobLockMs: 1000,
    },
  });

const failureOf = async (promise: Promise<unknown>): Promise<KiteError> => {
  try {
    await promise;
  } catch (err) {
    if (err instanceof KiteError) return err;
    throw err;
  }
  throw new Error('expected a KiteError');
};

test("the checksum is Kite's: hex SHA-256 of api_key + request_token + api_secret", () => {
  // sha256("abc" + "def" + "ghi") = sha256("abcdefghi")
  expect(sessionChecksum('abc', 'def', 'ghi')).toBe('19cc02f26df43cc571bc9ed7b0c4d29224a3ec229529221725ef76d021c8326f');
});

test('a session, then the profile of its token; logout ends the token', async () => {
  const app = kite.addApp({ userId: 'QW1234', userName: 'Ravi K' });
  const kiteClient = client();
  const session = await kiteClient.createSession(app.apiKey, app.apiSecret, kite.requestToken(app.apiKey));
  expect(session).toEqual({ accessToken: expect.any(String), userId: 'QW1234', userName: 'Ravi K' });
  expect(await kiteClient.profile(app.apiKey, session.accessToken)).toEqual({ userId: 'QW1234', userName: 'Ravi K' });
  await kiteClient.logout(app.apiKey, session.accessToken);
  expect(kite.isLive(session.accessToken)).toBe(false);
});

test('InputException and TokenException are rejections, never retried; no credential in the error', async () => {
  const app = kite.addApp();
  kite.script('GET /user/profile', [{ status: 400, errorType: 'InputException', message: 'Invalid `api_key`.' }]);
  const input = await failureOf(client().profile(app.apiKey, 'sometoken'));
  expect(input).toMatchObject({ kind: 'rejected', errorType: 'InputException', status: 400, attempts: 1 });
  const token = await failureOf(client().profile(app.apiKey, 'sometoken'));
  expect(token).toMatchObject({ kind: 'rejected', errorType: 'TokenException', status: 403, attempts: 1 });
  expect(kite.count('GET /user/profile', app.apiKey)).toBe(2);
  for (const err of [input, token]) expect(`${err.message} ${JSON.stringify(err)}`).not.toMatch(new RegExp(`${app.apiKey}|sometoken`));
});

test('5xx and 429 are retried up to KITE_API_MAX_RETRIES attempts, then unavailable', async () => {
  for (const status of [504, 429]) {
    const app = kite.addApp();
    kite.always('GET /user/profile', { status, retryAfter: status === 429 ? 0 : undefined });
    const err = await failureOf(client().profile(app.apiKey, kite.accessToken(app.apiKey)));
    expect(err).toMatchObject({ kind: 'unavailable', status, attempts: 3 });
    expect(kite.count('GET /user/profile', app.apiKey)).toBe(3);
  }
});

test('a refused connection is unavailable, named by its code only', async () => {
  const closed = createKiteClient({
    kite: { baseUrl: 'http://127.0.0.1:9', timeoutMs: 1000, maxRetries: 2 },
    tradingAccounts: { loginUrl: 'http://127.0.0.1:9', requestsPerSecond: 10, retryBackoffMs: 10, expirySchedule: '', jobLockMs: 1000 },
  });
  const err = await failureOf(closed.profile('key1234567', 'token1234567'));
  expect(err).toMatchObject({ kind: 'unavailable', attempts: 2, message: 'Kite could not be reached (ECONNREFUSED)' });
});

test('the login URL carries v=3, the api key and the state in redirect_params', () => {
  const url = new URL(client().loginUrl('kitekey1234', { state: 'abc/def' }));
  expect(url.searchParams.get('v')).toBe('3');
  expect(url.searchParams.get('api_key')).toBe('kitekey1234');
  expect(url.searchParams.get('redirect_params')).toBe('state=abc%2Fdef');
});

test('access tokens end at the next 06:00 Asia/Kolkata (00:30 UTC)', () => {
  expect(nextKiteExpiry(new Date('2026-12-02T00:29:59Z')).toISOString()).toBe('2026-12-02T00:30:00.000Z');
  expect(nextKiteExpiry(new Date('2026-12-02T00:30:00Z')).toISOString()).toBe('2026-12-03T00:30:00.000Z');
  // 23:00 IST on 31 December is 17:30 UTC: the token ends on the first of January.
  expect(nextKiteExpiry(new Date('2026-12-31T17:30:00Z')).toISOString()).toBe('2027-01-01T00:30:00.000Z');
});

test('a masked api key shows its last four characters only, and nothing of a short one', () => {
  expect(maskApiKey('abcdefgh12345678')).toBe('************5678');
  expect(maskApiKey('short')).toBe('********');
});
