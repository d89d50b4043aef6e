// Secrets stay secret: one user goes through every flow (registration, email verification, sign-in
// with MFA and backup codes, refresh, password change and reset, Google sign-in, a Kite account
// and its credentials, an audit export, sign-out) while every secret handed out or sent is
// collected; none may then appear in a log line (api and workers), an error body, an event row or
// stream entry, a BullMQ job's data in Redis, or an export.
import { call, eventually, type Reply } from '../helpers/app';
import { startStack, type TestStack } from '../helpers/stack';
import { startFakeGoogle, type FakeGoogle } from '../helpers/oidc-provider';
import { bindingCookie, googleEnvironment, startSignIn } from '../helpers/google';
import { streamEvents } from '../helpers/auth';
import { Authenticator, wrongCode } from '../mfa/rfc6238';
import { scanKeys } from '../../shared/redis';

jest.setTimeout(120_000);

let google: FakeGoogle;
let s: TestStack;
beforeAll(async () => {
  google = await startFakeGoogle();
  s = await startStack({ ...googleEnvironment(google), EMAIL_LINK_BASE_URL: 'https://app.example' });
});
afterAll(async () => {
  await s.close();
  await google.close();
});

/** A secret found as a whole word: a 6-digit code must not match inside a longer run of characters. */
const occurs = (haystack: string, secret: string) =>
  new RegExp(`(?<![A-Za-z0-9_-])${secret.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![A-Za-z0-9_-])`).test(haystack);

test('no password, token, code, secret, api key or cookie value reaches a log, an error, an event, a job or an export', async () => {
  const t = s.app;
  const secrets: string[] = [];
  const keep = (...values: (string | undefined | null)[]) => {
    for (const v of values) {
      if (!v) throw new Error('a secret the flow should have given is missing');
      secrets.push(v);
    }
  };
  const errors: Reply[] = [];
  const api = async (path: string, init: Parameters<typeof call>[1] = {}): Promise<Reply> => {
    const r = await call(`${t.url}${path}`, init);
    if (r.status >= 400) errors.push(r);
    for (const c of r.headers.getSetCookie()) {
      const value = c.split(';')[0].split('=').slice(1).join('=');
      if (value) keep(value);
    }
    return r;
  };
  const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
  const mailToken = async (to: string, subject: string, path: string, nth = 1): Promise<string> => {
    const mails = await eventually(
      () => {
        const found = s.smtp.messages.filter((m) => m.to.includes(to) && m.subject === subject);
        return found.length >= nth && found;
      },
      { timeoutMs: 20_000 },
    );
    return new RegExp(`https://app\\.example/${path}\\?token=([A-Za-z0-9_-]+)`).exec(mails[nth - 1].text)![1];
  };

  // Registration and email verification.
  const email = `secrets-${Date.now()}@example.com`;
  const password = 'Register-Passw0rd-Kept-1!';
  keep(password);
  const registered = await api('/v1/auth/register', { body: { email, password, name: 'Asha Rao' } });
  expect(registered.status).toBe(201);
  const userId: string = registered.body.user_id;
  const verifyToken = await mailToken(email, 'Confirm your email address', 'verify-email');
  keep(verifyToken);
  expect((await api('/v1/auth/verify-email', { body: { token: verifyToken } })).status).toBe(200);
  expect((await api('/v1/auth/verify-email', { body: { token: verifyToken } })).status).toBe(400);

  // Sign-in, a wrong password, MFA set-up and enabling.
  const wrongPassword = 'Not-The-Passw0rd-Kept-2!';
  keep(wrongPassword);
  expect((await api('/v1/auth/login', { body: { email, password: wrongPassword } })).status).toBe(401);
  let session = await api('/v1/auth/login', { body: { email, password } });
  expect(session.status).toBe(200);
  keep(session.body.access_token, session.body.refresh_token);
  const setup = await api('/v1/mfa/totp/setup', { body: {}, headers: bearer(session.body.access_token) });
  keep(setup.body.secret);
  const authenticator = new Authenticator(setup.body.secret);
  const enableCode = await authenticator.code();
  keep(enableCode);
  const enabled = await api('/v1/mfa/totp/enable', { body: { code: enableCode }, headers: bearer(session.body.access_token) });
  expect(enabled.status).toBe(200);
  const backupCodes: string[] = enabled.body.backup_codes;
  keep(...backupCodes);

  // Signing in with a TOTP code, a wrong code, and a backup code.
  const challenge = async () => {
    const r = await api('/v1/auth/login', { body: { email, password } });
    keep(r.body.mfa_token);
    return r.body.mfa_token as string;
  };
  const wrong = wrongCode(setup.body.secret);
  keep(wrong);
  expect((await api('/v1/auth/mfa/verify', { body: { mfa_token: await challenge(), code: wrong } })).status).toBe(401);
  const signInCode = await authenticator.code();
  keep(signInCode);
  session = await api('/v1/auth/mfa/verify', { body: { mfa_token: await challenge(), code: signInCode } });
  expect(session.status).toBe(200);
  keep(session.body.access_token, session.body.refresh_token);
  const byBackup = await api('/v1/auth/mfa/verify', { body: { mfa_token: await challenge(), code: backupCodes[0] } });
  expect(byBackup.status).toBe(200);
  keep(byBackup.body.access_token, byBackup.body.refresh_token);
  // Codes of later time steps would wait for the clock: backup codes from here on.
  const regenerated = await api('/v1/mfa/backup-codes/regenerate', {
    body: { code: backupCodes[1] },
    headers: bearer(session.body.access_token),
  });
  expect(regenerated.status).toBe(200);
  const fresh: string[] = regenerated.body.backup_codes;
  keep(...fresh);

  // Refresh, and a refresh with an unknown token.
  const refreshed = await api('/v1/auth/refresh', { body: { refresh_token: session.body.refresh_token } });
  expect(refreshed.status).toBe(200);
  keep(refreshed.body.access_token, refreshed.body.refresh_token);
  const auth = bearer(refreshed.body.access_token);
  const bogusRefresh = 'B'.repeat(43);
  expect((await api('/v1/auth/refresh', { body: { refresh_token: bogusRefresh } })).status).toBe(401);

  // Step-up, then a password change (and one refused by the policy, and one with a wrong password).
  const step = await api('/v1/mfa/totp/verify', { body: { code: fresh[0] }, headers: auth });
  expect(step.status).toBe(200);
  keep(step.body.verification_token);
  const stepped = { ...auth, 'X-Verification-Token': step.body.verification_token };
  const changed = 'Changed-Passw0rd-Kept-3!';
  const weak = 'short';
  keep(changed);
  expect(
    (await api('/v1/users/change-password', { body: { current_password: wrongPassword, new_password: changed }, headers: stepped })).status,
  ).toBeGreaterThanOrEqual(400);
  expect(
    (await api('/v1/users/change-password', { body: { current_password: password, new_password: weak }, headers: stepped })).status,
  ).toBe(400);
  expect(
    (await api('/v1/users/change-password', { body: { current_password: password, new_password: changed }, headers: stepped })).status,
  ).toBe(204);

  // Password reset: the link, a refused password, the reset, the spent link again.
  expect((await api('/v1/auth/password/reset-request', { body: { email } })).status).toBe(202);
  const resetToken = await mailToken(email, 'Reset your password', 'reset-password');
  keep(resetToken);
  const reset = 'Reset-Passw0rd-Kept-4!';
  keep(reset);
  expect((await api('/v1/auth/password/reset', { body: { token: resetToken, new_password: 'Asha Rao' } })).status).toBe(400);
  expect((await api('/v1/auth/password/reset', { body: { token: resetToken, new_password: reset } })).status).toBe(204);
  expect((await api('/v1/auth/password/reset', { body: { token: resetToken, new_password: reset } })).status).toBe(400);
  const mfaToken = await (async () => {
    const r = await api('/v1/auth/login', { body: { email, password: reset } });
    keep(r.body.mfa_token);
    return r.body.mfa_token as string;
  })();
  session = await api('/v1/auth/mfa/verify', { body: { mfa_token: mfaToken, code: fresh[1] } });
  expect(session.status).toBe(200);
  keep(session.body.access_token, session.body.refresh_token);
  const signedIn = bearer(session.body.access_token);

  // Google sign-in (another person), by the browser's GET with the binding cookie, and a bad state.
  const account = google.addAccount({});
  const started = await startSignIn(t);
  keep(started.body.state, bindingCookie(started).Cookie.split('=')[1]);
  const back = await google.authorize(started.body.authorization_url, account.sub);
  keep(back.query.code);
  const googled = await api(`/v1/auth/oauth/google/callback${back.callbackUrl.search}`, { headers: bindingCookie(started) });
  expect(googled.status).toBe(200);
  keep(googled.body.access_token, googled.body.refresh_token, ...google.issuedTokens);
  expect((await api('/v1/auth/oauth/google/callback', { body: { code: back.query.code, state: back.query.state } })).status).toBe(400);

  // A Kite account: link with its api key and secret, wait until active, reveal the credentials.
  const kiteApp = s.kite.addApp();
  const requestToken = s.kite.requestToken(kiteApp.apiKey);
  keep(kiteApp.apiKey, kiteApp.apiSecret, requestToken);
  const linked = await api('/v1/trading-accounts/link', {
    headers: signedIn,
    body: { broker: 'kite', api_key: kiteApp.apiKey, api_secret: kiteApp.apiSecret, request_token: requestToken },
  });
  expect(linked.status).toBe(202);
  await eventually(async () => (await api(`/v1/trading-accounts/${linked.body.id}`, { headers: signedIn })).body.status === 'active', {
    timeoutMs: 20_000,
  });
  const reveal = await api('/v1/mfa/totp/verify', { body: { code: fresh[2] }, headers: signedIn });
  keep(reveal.body.verification_token);
  const credentials = await api(`/v1/trading-accounts/${linked.body.id}?include_credentials=true`, {
    headers: { ...signedIn, 'X-Verification-Token': reveal.body.verification_token },
  });
  expect(credentials.status).toBe(200);
  expect(credentials.body.credentials.api_secret).toBe(kiteApp.apiSecret);
  keep(credentials.body.credentials.access_token);
  expect(
    (
      await api(`/v1/trading-accounts/${linked.body.id}?include_credentials=true`, {
        headers: { ...signedIn, 'X-Verification-Token': 'not-a-token' },
      })
    ).status,
  ).toBe(403);

  // An audit export of everything the user did, in both formats.
  const exported: string[] = [];
  for (const format of ['json', 'csv']) {
    const requested = await api('/v1/audit/export', { body: { format }, headers: signedIn });
    expect(requested.status).toBe(202);
    const file = await eventually(
      async () => {
        const r = await api(`/v1/audit/export/${requested.body.export_id}`, { headers: signedIn });
        return r.status === 200 && r;
      },
      { timeoutMs: 20_000 },
    );
    exported.push(file.text);
  }
  expect(exported.join('\n')).toContain('user.login');

  // Sign-out, then everything the relay and the queues still had to do.
  expect((await api('/v1/auth/logout', { body: {}, headers: signedIn })).status).toBe(204);
  await eventually(async () => Number((await t.context.db('events').whereNull('published_at').count({ n: '*' }).first())!.n) === 0, {
    timeoutMs: 20_000,
  });

  // Where secrets must never be.
  const eventRows = JSON.stringify(await t.context.db('events').select());
  const stream = (await streamEvents(t.context.redis, t.config.events.streamName)).map((e) => JSON.stringify(e)).join('\n');
  const jobs: string[] = [];
  for (const key of await scanKeys(t.context.redis, `${t.config.queues.prefix}:*`)) {
    if ((await t.context.redis.type(key)) === 'hash') jobs.push(JSON.stringify(await t.context.redis.hgetall(key)));
  }
  // The jobs are still there to read: the Kite verification's and the export's among them.
  expect(jobs.join('\n')).toContain(linked.body.id);
  const places: Record<string, string> = {
    logs: t.logs.text,
    'error bodies': errors.map((r) => r.text).join('\n'),
    'event rows': eventRows,
    'event stream': stream,
    'job data': jobs.join('\n'),
    exports: exported.join('\n'),
  };
  expect(errors.length).toBeGreaterThan(5);
  // The api's request lines and the workers' job lines were captured (one logger, one process).
  expect(t.logs.text).toContain('/v1/auth/mfa/verify');
  expect(t.logs.text).toMatch(/audit-export/);
  const leaks: string[] = [];
  for (const [place, text] of Object.entries(places)) {
    for (const secret of new Set(secrets)) if (occurs(text, secret)) leaks.push(`${place}: ${secret}`);
  }
  expect(leaks).toEqual([]);
  expect(userId).toBeTruthy();
});
