// A user changes their email address: the link to the new address works once, the old address is
// told, the other sessions end, a taken address is refused at the request and at the confirmation
// (another account may register it in between), and events never carry an address.
import crypto from 'node:crypto';
import { call, eventually, type TestApp } from '../helpers/app';
import { startStack, type TestStack } from '../helpers/stack';
import { createUser } from '../helpers/users';
import { enableMfa, login, signedInUser, streamEvents, type SignedIn } from '../helpers/auth';

jest.setTimeout(60_000);

let s: TestStack;
let t: TestApp;
beforeAll(async () => {
  s = await startStack({ RATELIMIT_REGISTER_ATTEMPTS: '100' });
  t = s.app;
});
afterAll(() => s.close());

const api = (path: string, init: Parameters<typeof call>[1] = {}) => call(`${t.url}${path}`, init);
const newAddress = () => `new-${crypto.randomBytes(4).toString('hex')}@example.org`;

async function linkTo(address: string): Promise<string> {
  const mail = await s.smtp.waitFor((m) => m.to.includes(address) && /Confirm your new email address/.test(m.subject));
  return /token=([\w-]+)/.exec(mail.text)![1];
}

const events = () => streamEvents(t.context.redis, t.config.events.streamName);

test('the link to the new address works once; the old address is told; the other sessions end', async () => {
  const here = await signedInUser(t.context.db, t.url);
  const elsewhere = await login(t.url, here);
  await t.context
    .db('auth_providers')
    .insert({ user_id: here.id, provider: 'google', provider_user_id: `sub-${here.id}`, email: here.email });
  const address = newAddress();

  const asked = await api('/v1/users/me/email', { body: { new_email: address, password: here.password }, headers: here.auth });
  expect([asked.status, asked.body]).toEqual([202, { status: 'pending_confirmation', expires_in: 86400 }]);
  const notice = await s.smtp.waitFor((m) => m.to.includes(here.email) && /about to change/.test(m.subject));
  expect(notice.text).not.toContain(address);
  const token = await linkTo(address);

  const confirmed = await api('/v1/users/me/email/confirm', { body: { token }, headers: here.auth });
  expect([confirmed.status, confirmed.body]).toEqual([200, { email: address, email_verified: true }]);
  // This session goes on; the other one ends at once, refresh included.
  expect((await api('/v1/users/me', { headers: here.auth })).body).toMatchObject({ email: address, email_verified: true });
  expect((await api('/v1/users/me', { headers: elsewhere.auth })).status).toBe(401);
  expect((await api('/v1/auth/refresh', { body: { refresh_token: elsewhere.refreshToken } })).status).toBe(401);
  // Once only.
  const again = await api('/v1/users/me/email/confirm', { body: { token }, headers: here.auth });
  expect([again.status, again.body.type]).toEqual([400, 'urn:user-service:problem:invalid_token']);
  // The new address signs in; the old one no longer does.
  expect((await api('/v1/auth/login', { body: { email: address, password: here.password } })).status).toBe(200);
  expect((await api('/v1/auth/login', { body: { email: here.email, password: here.password } })).status).toBe(401);
  // A linked Google identity stays linked (by its sub).
  expect(await t.context.db('auth_providers').where({ user_id: here.id }).pluck('provider_user_id')).toEqual([`sub-${here.id}`]);

  const revoked = await eventually(async () =>
    (await events()).find((e) => e.type === 'session.revoked' && e.payload.data.session_id === elsewhere.sessionId),
  );
  expect(revoked.payload.data.reason).toBe('email_change');
  const changed = await eventually(async () =>
    (await events()).find((e) => e.type === 'user.email_changed' && e.payload.user_id === here.id),
  );
  expect(changed.payload.data).toEqual({});
  for (const e of (await events()).filter((x) => x.payload.user_id === here.id)) {
    expect(e.raw).not.toContain(address);
    expect(e.raw).not.toContain(here.email);
    expect(e.raw).not.toContain(token);
  }
  expect(t.logs.text).not.toContain(token);
  expect(await t.context.db('sessions').where({ id: here.sessionId }).first('revoked_at')).toEqual({ revoked_at: null });
});

test('a taken address is refused at the request (409), and the wrong password (401) or the same address (400) too', async () => {
  const me = await signedInUser(t.context.db, t.url);
  const other = await createUser(t.context.db);
  const taken = await api('/v1/users/me/email', {
    body: { new_email: other.email.toUpperCase(), password: me.password },
    headers: me.auth,
  });
  expect([taken.status, taken.body.type]).toEqual([409, 'urn:user-service:problem:email_taken']);
  const wrong = await api('/v1/users/me/email', { body: { new_email: newAddress(), password: 'Not-My-Password-1' }, headers: me.auth });
  expect(wrong.status).toBe(401);
  const same = await api('/v1/users/me/email', { body: { new_email: me.email, password: me.password }, headers: me.auth });
  expect([same.status, same.body.errors?.[0]?.field]).toEqual([400, 'new_email']);
  const bad = await api('/v1/users/me/email', { body: { new_email: 'not-an-address', password: me.password }, headers: me.auth });
  expect([bad.status, bad.body.errors?.[0]?.field]).toEqual([400, 'new_email']);
  expect((await api('/v1/users/me/email', { body: { new_email: newAddress(), password: me.password } })).status).toBe(401);
});

test('requests that mail one address are limited like every email-sending endpoint (429)', async () => {
  const me = await signedInUser(t.context.db, t.url);
  const address = newAddress();
  const ask = () => api('/v1/users/me/email', { body: { new_email: address, password: me.password }, headers: me.auth });
  for (let i = 0; i < 3; i++) expect((await ask()).status).toBe(202);
  expect((await ask()).status).toBe(429);
});

test('deleting the account removes its pending email change', async () => {
  const me = await signedInUser(t.context.db, t.url);
  await api('/v1/users/me/email', { body: { new_email: newAddress(), password: me.password }, headers: me.auth });
  expect((await api('/v1/users/me', { method: 'DELETE', body: { password: me.password }, headers: me.auth })).status).toBe(204);
  expect(await t.context.db('email_change_tokens').where({ user_id: me.id }).first()).toBeUndefined();
});

test('race: another account registers the address between request and confirmation → 409, nothing changes', async () => {
  const me = await signedInUser(t.context.db, t.url);
  const address = newAddress();
  expect((await api('/v1/users/me/email', { body: { new_email: address, password: me.password }, headers: me.auth })).status).toBe(202);
  const token = await linkTo(address);
  const registered = await api('/v1/auth/register', { body: { email: address, password: 'Another-Long-Passphrase-7', name: 'Quick' } });
  expect(registered.status).toBe(201);
  const confirmed = await api('/v1/users/me/email/confirm', { body: { token }, headers: me.auth });
  expect([confirmed.status, confirmed.body.type]).toEqual([409, 'urn:user-service:problem:email_taken']);
  expect((await api('/v1/users/me', { headers: me.auth })).body.email).toBe(me.email);
});

test("a link of another account's is no link of mine", async () => {
  const me = await signedInUser(t.context.db, t.url);
  const other = await signedInUser(t.context.db, t.url);
  const address = newAddress();
  await api('/v1/users/me/email', { body: { new_email: address, password: me.password }, headers: me.auth });
  const token = await linkTo(address);
  expect((await api('/v1/users/me/email/confirm', { body: { token }, headers: other.auth })).status).toBe(400);
  expect((await api('/v1/users/me', { headers: other.auth })).body.email).toBe(other.email);
});

test('an account without a password confirms with a step-up token (or a fresh sign-in)', async () => {
  const me: SignedIn = await signedInUser(t.context.db, t.url);
  const mfa = await enableMfa(t.url, me);
  await t.context.db('users').where({ id: me.id }).update({ password_hash: null });
  // A sign-in older than 5 minutes: refresh after ageing the session carries the old auth_time.
  await t.context
    .db('sessions')
    .where({ id: me.sessionId })
    .update({ auth_time: t.context.db.raw(`now() - interval '10 minutes'`) });
  const refreshed = await api('/v1/auth/refresh', { body: { refresh_token: me.refreshToken } });
  const auth = { Authorization: `Bearer ${refreshed.body.access_token}` };
  const refused = await api('/v1/users/me/email', { body: { new_email: newAddress() }, headers: auth });
  expect([refused.status, refused.body.type]).toEqual([403, 'urn:user-service:problem:reauthentication_required']);
  const verified = await api('/v1/mfa/totp/verify', { body: { code: await mfa.code() }, headers: auth });
  const address = newAddress();
  const asked = await api('/v1/users/me/email', {
    body: { new_email: address },
    headers: { ...auth, 'X-Verification-Token': verified.body.verification_token },
  });
  expect(asked.status).toBe(202);
  await linkTo(address);
});
