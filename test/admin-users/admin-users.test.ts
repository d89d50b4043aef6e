// Support's account acts (/v1/admin/users): who may call each endpoint, the event each write
// records with the admin as actor, suspension and reactivation end to end, MFA reset, the
// self and last-admin rules, search with keyset pages, roles with the permission cache, unlock.
import crypto from 'node:crypto';
import { call, eventually, type TestApp } from '../helpers/app';
import { startStack, type TestStack } from '../helpers/stack';
import { createUser, type TestUser } from '../helpers/users';
import { enableMfa, signedInUser, streamEvents, type SignedIn } from '../helpers/auth';
import type { Authenticator } from '../mfa/rfc6238';

jest.setTimeout(60_000);

let s: TestStack;
let t: TestApp;
let admin: Admin;
let trader: SignedIn;

beforeAll(async () => {
  s = await startStack({ RATELIMIT_REGISTER_ATTEMPTS: '100' });
  t = s.app;
  admin = await signedInAdmin();
  trader = await signedInUser(t.context.db, t.url);
});
afterAll(() => s.close());

const api = (path: string, init: Parameters<typeof call>[1] = {}) => call(`${t.url}${path}`, init);

interface Admin extends SignedIn {
  mfa: Authenticator;
  /** The access token and a step-up token of the session. */
  stepUp: Record<string, string>;
}

async function stepUpHeaders(user: SignedIn, mfa: Authenticator): Promise<Record<string, string>> {
  const verified = await api('/v1/mfa/totp/verify', { body: { code: await mfa.code() }, headers: user.auth });
  expect(verified.status).toBe(200);
  return { ...user.auth, 'X-Verification-Token': verified.body.verification_token };
}

async function signedInAdmin(roles = ['admin']): Promise<Admin> {
  const user = await signedInUser(t.context.db, t.url, { roles });
  const mfa = await enableMfa(t.url, user);
  return { ...user, mfa, stepUp: await stepUpHeaders(user, mfa) };
}

async function eventOf(type: string, userId: string, match: (data: Record<string, unknown>) => boolean = () => true) {
  return eventually(async () =>
    (await streamEvents(t.context.redis, t.config.events.streamName)).find(
      (e) => e.type === type && e.payload.user_id === userId && match(e.payload.data as Record<string, unknown>),
    ),
  );
}

const permissionId = async (name: string) => (await t.context.db('permissions').where({ name }).first('id'))!.id;

const loginAs = (user: TestUser) => api('/v1/auth/login', { body: { email: user.email, password: user.password } });

interface WriteCase {
  name: string;
  method: 'POST' | 'DELETE';
  /** Makes a target in the state the act needs; returns the path and the body. */
  setup(): Promise<{ path: string; body?: unknown; userId: string }>;
  status: number;
  event: string;
  data: Record<string, unknown>;
}

const base = (id: string) => `/v1/admin/users/${id}`;

const WRITES: WriteCase[] = [
  {
    name: 'suspend',
    method: 'POST',
    async setup() {
      const u = await createUser(t.context.db);
      return { path: `${base(u.id)}/suspend`, body: { reason_code: 'fraud_suspected' }, userId: u.id };
    },
    status: 200,
    event: 'user.suspended',
    data: { reason_code: 'fraud_suspected' },
  },
  {
    name: 'reactivate',
    method: 'POST',
    async setup() {
      const u = await createUser(t.context.db, { status: 'suspended' });
      return { path: `${base(u.id)}/reactivate`, body: {}, userId: u.id };
    },
    status: 200,
    event: 'user.reactivated',
    data: {},
  },
  {
    name: 'mfa reset',
    method: 'POST',
    async setup() {
      const u = await signedInUser(t.context.db, t.url);
      await enableMfa(t.url, u);
      return { path: `${base(u.id)}/mfa/reset`, body: {}, userId: u.id };
    },
    status: 204,
    event: 'mfa.disabled',
    data: { by_admin: true },
  },
  {
    name: 'delete all sessions',
    method: 'DELETE',
    async setup() {
      const u = await signedInUser(t.context.db, t.url);
      return { path: `${base(u.id)}/sessions`, userId: u.id };
    },
    status: 204,
    event: 'session.revoked',
    data: { reason: 'admin' },
  },
  {
    name: 'delete one session',
    method: 'DELETE',
    async setup() {
      const u = await signedInUser(t.context.db, t.url);
      return { path: `${base(u.id)}/sessions/${u.sessionId}`, userId: u.id };
    },
    status: 204,
    event: 'session.revoked',
    data: { reason: 'admin' },
  },
  {
    name: 'add role',
    method: 'POST',
    async setup() {
      const u = await createUser(t.context.db);
      return { path: `${base(u.id)}/roles`, body: { role: 'viewer' }, userId: u.id };
    },
    status: 200,
    event: 'role.assigned',
    data: { role: 'viewer', via: 'admin' },
  },
  {
    name: 'remove role',
    method: 'DELETE',
    async setup() {
      const u = await createUser(t.context.db, { roles: ['trader', 'viewer'] });
      return { path: `${base(u.id)}/roles/viewer`, userId: u.id };
    },
    status: 204,
    event: 'role.removed',
    data: { role: 'viewer', via: 'admin' },
  },
  {
    name: 'unlock',
    method: 'POST',
    async setup() {
      const u = await createUser(t.context.db);
      return { path: `${base(u.id)}/unlock`, body: {}, userId: u.id };
    },
    status: 204,
    event: 'user.unlocked',
    data: {},
  },
  {
    name: 'verify email',
    method: 'POST',
    async setup() {
      const u = await createUser(t.context.db, { status: 'pending_verification' });
      await t.context.db('users').where({ id: u.id }).update({ email_verified: false });
      return { path: `${base(u.id)}/verify-email`, body: {}, userId: u.id };
    },
    status: 200,
    event: 'user.email_verified',
    data: { by_admin: true },
  },
  {
    name: 'password reset',
    method: 'POST',
    async setup() {
      const u = await createUser(t.context.db);
      return { path: `${base(u.id)}/password-reset`, body: {}, userId: u.id };
    },
    status: 202,
    event: 'password.reset_requested',
    data: {},
  },
];

describe.each(WRITES)('$name', (c) => {
  test('trader 403, admin without step-up 403, admin with step-up succeeds; the event has the admin as actor', async () => {
    const { path, body, userId } = await c.setup();
    const asTrader = await api(path, { method: c.method, body, headers: trader.auth });
    expect([asTrader.status, asTrader.body.type]).toEqual([403, 'urn:user-service:problem:forbidden']);
    const withoutStepUp = await api(path, { method: c.method, body, headers: admin.auth });
    expect([withoutStepUp.status, withoutStepUp.body.type]).toEqual([403, 'urn:user-service:problem:verification_required']);
    const done = await api(path, { method: c.method, body, headers: admin.stepUp });
    expect([done.status, done.text]).toEqual([c.status, expect.any(String)]);
    const event = await eventOf(c.event, userId, (data) => Object.entries(c.data).every(([k, v]) => data[k] === v));
    expect(event.payload.actor_id).toBe(admin.id);
    expect(event.payload.data).toMatchObject(c.data);
  });
});

describe('reads', () => {
  test('search and detail: trader 403, admin 200 (no step-up needed to read)', async () => {
    for (const path of ['/v1/admin/users', base(trader.id)]) {
      expect((await api(path, { headers: trader.auth })).status).toBe(403);
      expect((await api(path, { headers: admin.auth })).status).toBe(200);
      expect((await api(path, { headers: admin.stepUp })).status).toBe(200);
    }
    expect((await api('/v1/admin/users')).status).toBe(401);
  });

  test('detail: profile, roles, direct grants, identities, session count, trading accounts without credentials, MFA state', async () => {
    const u = await signedInUser(t.context.db, t.url);
    await enableMfa(t.url, u);
    await t.context.db('user_permissions').insert({
      user_id: u.id,
      permission_id: await permissionId('audit:read_any'),
      granted_by: admin.id,
    });
    await t.context.db('auth_providers').insert({ user_id: u.id, provider: 'google', provider_user_id: 'sub-123', email: u.email });
    await t.context.db('trading_accounts').insert({
      user_id: u.id,
      broker: 'kite',
      status: 'active',
      api_key_fingerprint: 'fp',
      api_key_masked: 'ab12****',
      credentials_encrypted: 'v1.secret-envelope.x.y',
      nickname: 'Main',
    });
    const r = await api(base(u.id), { headers: admin.auth });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      id: u.id,
      email: u.email,
      email_verified: true,
      status: 'active',
      has_password: true,
      roles: ['trader'],
      direct_grants: [expect.objectContaining({ permission: 'audit:read_any', granted_by: admin.id, expires_at: null })],
      identities: [expect.objectContaining({ provider: 'google', email: u.email })],
      session_count: 1,
      trading_accounts: [{ id: expect.any(String), broker: 'kite', nickname: 'Main', status: 'active', created_at: expect.any(String) }],
      mfa: { enabled: true, enabled_at: expect.any(String), backup_codes_remaining: 8 },
    });
    expect(r.text).not.toMatch(/secret-envelope|ab12|password_hash|mfa_secret/);
    expect((await api(base(crypto.randomUUID()), { headers: admin.auth })).status).toBe(404);
  });
});

test('a suspended user: the access token stops at once, refresh fails, login gets the single 401; reactivation restores sign-in', async () => {
  const u = await signedInUser(t.context.db, t.url);
  expect((await api('/v1/users/me', { headers: u.auth })).status).toBe(200);
  const suspended = await api(`${base(u.id)}/suspend`, { body: { reason_code: 'security_incident' }, headers: admin.stepUp });
  expect(suspended.body).toEqual({ id: u.id, status: 'suspended' });
  expect((await api('/v1/users/me', { headers: u.auth })).status).toBe(401);
  expect((await api('/v1/auth/refresh', { body: { refresh_token: u.refreshToken } })).status).toBe(401);
  const refused = await loginAs(u);
  const wrongPassword = await api('/v1/auth/login', { body: { email: u.email, password: 'Not-The-Password-1' } });
  expect(refused.status).toBe(401);
  expect([refused.body.type, refused.body.detail]).toEqual([wrongPassword.body.type, wrongPassword.body.detail]);
  const revoked = await eventOf('session.revoked', u.id, (d) => d.session_id === u.sessionId);
  expect(revoked.payload).toMatchObject({ actor_id: admin.id, data: { reason: 'admin' } });

  const again = await api(`${base(u.id)}/reactivate`, { body: {}, headers: admin.stepUp });
  expect(again.body).toEqual({ id: u.id, status: 'active' });
  expect((await loginAs(u)).status).toBe(200);
  // Acting again changes nothing and records nothing.
  expect((await api(`${base(u.id)}/reactivate`, { body: {}, headers: admin.stepUp })).body.status).toBe('active');
});

test('a bad reason code is refused naming the field, and nothing changes', async () => {
  const u = await createUser(t.context.db);
  const r = await api(`${base(u.id)}/suspend`, { body: { reason_code: 'he was rude' }, headers: admin.stepUp });
  expect(r.status).toBe(400);
  expect(r.body.errors).toEqual([{ field: 'reason_code', message: expect.stringContaining('fraud_suspected') }]);
  expect((await t.context.db('users').where({ id: u.id }).first('status'))!.status).toBe('active');
});

test('MFA reset: the user signs in with the password alone, every session ended, and got the notice', async () => {
  const u = await signedInUser(t.context.db, t.url);
  await enableMfa(t.url, u);
  expect((await loginAs(u)).body.mfa_required).toBe(true);
  expect((await api(`${base(u.id)}/mfa/reset`, { body: {}, headers: admin.stepUp })).status).toBe(204);
  expect((await api('/v1/users/me', { headers: u.auth })).status).toBe(401);
  const signedIn = await loginAs(u);
  expect(signedIn.status).toBe(200);
  expect(signedIn.body.access_token).toEqual(expect.any(String));
  expect(await t.context.db('mfa_backup_codes').where({ user_id: u.id }).count<{ n: number }[]>('* as n')).toEqual([{ n: 0 }]);
  const mail = await s.smtp.waitFor((m) => m.to.includes(u.email) && /Two-factor authentication was reset/.test(m.subject));
  expect(mail.text).toMatch(/turned off two-factor authentication/);
  // Again: nothing to reset.
  expect((await api(`${base(u.id)}/mfa/reset`, { body: {}, headers: admin.stepUp })).status).toBe(409);
});

test('an admin cannot suspend or demote themselves, and the last active admin cannot be suspended or demoted (409)', async () => {
  const self = await api(`${base(admin.id)}/suspend`, { body: { reason_code: 'other' }, headers: admin.stepUp });
  expect([self.status, self.body.type]).toEqual([409, 'urn:user-service:problem:self_action']);
  const demoteSelf = await api(`${base(admin.id)}/roles/admin`, { method: 'DELETE', headers: admin.stepUp });
  expect([demoteSelf.status, demoteSelf.body.type]).toEqual([409, 'urn:user-service:problem:self_action']);

  // Support staff with users:admin granted directly, not admins themselves; `admin` is then the last admin.
  const support = await signedInUser(t.context.db, t.url);
  for (const name of ['users:admin', 'users:read']) {
    await t.context.db('user_permissions').insert({
      user_id: support.id,
      permission_id: await permissionId(name),
    });
  }
  await t.context.permissions.invalidate(support.id);
  const others = t.context
    .db('user_roles')
    .whereNot({ user_id: admin.id })
    .whereIn('role_id', t.context.db('roles').where({ name: 'admin' }).select('id'));
  await others.clone().del();
  const supportHeaders = await stepUpHeaders(support, await enableMfa(t.url, support));
  const suspendLast = await api(`${base(admin.id)}/suspend`, { body: { reason_code: 'other' }, headers: supportHeaders });
  expect([suspendLast.status, suspendLast.body.type]).toEqual([409, 'urn:user-service:problem:last_admin']);
  const demoteLast = await api(`${base(admin.id)}/roles/admin`, { method: 'DELETE', headers: supportHeaders });
  expect([demoteLast.status, demoteLast.body.type]).toEqual([409, 'urn:user-service:problem:last_admin']);
  expect((await api(base(admin.id), { headers: admin.auth })).body).toMatchObject({ status: 'active', roles: ['admin'] });

  // With a second active admin, the first can go.
  const second = await createUser(t.context.db, { roles: ['admin'] });
  expect((await api(`${base(second.id)}/roles/admin`, { method: 'DELETE', headers: supportHeaders })).status).toBe(204);
  expect((await api(`${base(second.id)}/roles`, { body: { role: 'admin' }, headers: supportHeaders })).status).toBe(200);
});

describe('search', () => {
  const tag = crypto.randomBytes(3).toString('hex');
  const made: string[] = [];
  const make = async () => {
    const u = await createUser(t.context.db, { email: `srch-${tag}-${made.length}@example.com` });
    made.push(u.id);
    return u;
  };

  test('finds by email prefix (any case) and by name, with the fields support needs', async () => {
    const u = await make();
    await t.context
      .db('users')
      .where({ id: u.id })
      .update({ name: `Zebediah Quill ${tag}` });
    const byEmail = await api(`/v1/admin/users?q=${encodeURIComponent(`SRCH-${tag}-0`)}`, { headers: admin.auth });
    expect(byEmail.status).toBe(200);
    expect(byEmail.body.users).toEqual([
      {
        id: u.id,
        email: u.email,
        name: `Zebediah Quill ${tag}`,
        status: 'active',
        roles: ['trader'],
        mfa_enabled: false,
        created_at: expect.any(String),
        last_login_at: null,
      },
    ]);
    const byName = await api(`/v1/admin/users?q=${encodeURIComponent(`quill ${tag}`)}`, { headers: admin.auth });
    expect(byName.body.users.map((x: { id: string }) => x.id)).toEqual([u.id]);
    // Wildcards are plain characters.
    expect((await api(`/v1/admin/users?q=${encodeURIComponent('%')}`, { headers: admin.auth })).body.users).toEqual([]);
    const admins = await api('/v1/admin/users?role=admin&status=active&limit=100', { headers: admin.auth });
    expect(admins.body.users.every((x: { roles: string[] }) => x.roles.includes('admin'))).toBe(true);
    expect(admins.body.users.map((x: { id: string }) => x.id)).toContain(admin.id);
  });

  test('pages newest first and stably under inserts; a forged cursor is refused', async () => {
    while (made.length < 6) await make();
    const q = `q=srch-${tag}-&limit=2`;
    const first = await api(`/v1/admin/users?${q}`, { headers: admin.auth });
    expect(first.body.users.map((x: { id: string }) => x.id)).toEqual([made[5], made[4]]);
    // New accounts arrive while the client pages: they sort before its cursor.
    await make();
    await make();
    const seen = [...first.body.users];
    let cursor: string | null = first.body.next_cursor;
    while (cursor) {
      const page = await api(`/v1/admin/users?${q}&cursor=${cursor}`, { headers: admin.auth });
      expect(page.status).toBe(200);
      seen.push(...page.body.users);
      cursor = page.body.next_cursor;
    }
    expect(seen.map((x: { id: string }) => x.id)).toEqual([...made.slice(0, 6)].reverse());
    const forged = await api(`/v1/admin/users?cursor=bm90LWEtY3Vyc29y`, { headers: admin.auth });
    expect([forged.status, forged.body.errors?.[0]?.field]).toEqual([400, 'query.cursor']);
    expect((await api('/v1/admin/users?limit=1000', { headers: admin.auth })).status).toBe(400);
  });
});

test('roles: a new role counts at once (permission cache invalidated); unknown roles are refused', async () => {
  const u = await signedInUser(t.context.db, t.url);
  const can = async () => (await api('/v1/authz/check', { body: { permission: 'users:read' }, headers: u.auth })).body.allowed as boolean;
  expect(await can()).toBe(false);
  const added = await api(`${base(u.id)}/roles`, { body: { role: 'admin' }, headers: admin.stepUp });
  expect(added.body).toEqual({ roles: ['admin', 'trader'] });
  expect(await can()).toBe(true);
  // Giving a held role again changes nothing and records nothing.
  expect((await api(`${base(u.id)}/roles`, { body: { role: 'admin' }, headers: admin.stepUp })).body).toEqual({
    roles: ['admin', 'trader'],
  });
  const assigned = await t.context.db('events').where({ type: 'role.assigned', user_id: u.id }).count<{ n: number }[]>('* as n');
  expect(assigned).toEqual([{ n: 1 }]);
  expect((await api(`${base(u.id)}/roles/admin`, { method: 'DELETE', headers: admin.stepUp })).status).toBe(204);
  expect(await can()).toBe(false);
  expect((await api(`${base(u.id)}/roles/admin`, { method: 'DELETE', headers: admin.stepUp })).status).toBe(404);
  const unknown = await api(`${base(u.id)}/roles`, { body: { role: 'service' }, headers: admin.stepUp });
  expect([unknown.status, unknown.body.errors]).toEqual([400, [{ field: 'role', message: expect.stringContaining('trader') }]]);
});

test('unlock clears the sign-in limits of the account (every IP) and its MFA limit', async () => {
  const u = await signedInUser(t.context.db, t.url);
  const mfa = await enableMfa(t.url, u);
  for (let i = 0; i < 5; i++) {
    expect((await api('/v1/auth/login', { body: { email: u.email, password: 'Wrong-Password-1' } })).status).toBe(401);
  }
  expect((await loginAs(u)).status).toBe(429);
  expect((await api(`${base(u.id)}/unlock`, { body: {}, headers: admin.stepUp })).status).toBe(204);
  const challenge = await loginAs(u);
  expect(challenge.body.mfa_required).toBe(true);
  for (let i = 0; i < 5; i++) {
    const wrong = await api('/v1/auth/mfa/verify', { body: { mfa_token: challenge.body.mfa_token, code: '000000' } });
    expect(wrong.status).toBe(401);
  }
  const locked = await loginAs(u);
  expect((await api('/v1/auth/mfa/verify', { body: { mfa_token: locked.body.mfa_token, code: await mfa.code() } })).status).toBe(429);
  expect((await api(`${base(u.id)}/unlock`, { body: {}, headers: admin.stepUp })).status).toBe(204);
  const retry = await loginAs(u);
  expect((await api('/v1/auth/mfa/verify', { body: { mfa_token: retry.body.mfa_token, code: await mfa.code() } })).status).toBe(200);
});

test('verify-email activates a pending account; password-reset sends the reset link; neither for a suspended account', async () => {
  const pending = await createUser(t.context.db, { status: 'pending_verification' });
  await t.context.db('users').where({ id: pending.id }).update({ email_verified: false });
  const verified = await api(`${base(pending.id)}/verify-email`, { body: {}, headers: admin.stepUp });
  expect(verified.body).toEqual({ id: pending.id, status: 'active' });
  expect(await t.context.db('users').where({ id: pending.id }).first('email_verified')).toEqual({ email_verified: true });

  const u = await createUser(t.context.db);
  expect((await api(`${base(u.id)}/password-reset`, { body: {}, headers: admin.stepUp })).status).toBe(202);
  const mail = await s.smtp.waitFor((m) => m.to.includes(u.email) && /Reset your password/.test(m.subject));
  const token = /token=([\w-]+)/.exec(mail.text)![1];
  const reset = await api('/v1/auth/password/reset', { body: { token, new_password: 'A-Brand-New-Passphrase-42' } });
  expect(reset.status).toBe(204);
  expect(t.logs.text).not.toContain(token);

  const suspended = await createUser(t.context.db, { status: 'suspended' });
  expect((await api(`${base(suspended.id)}/password-reset`, { body: {}, headers: admin.stepUp })).status).toBe(409);
});

test('no secret or address reaches the events of these acts, nor the step-up token the logs', async () => {
  await eventually(async () => (await streamEvents(t.context.redis, t.config.events.streamName)).length > 0);
  const events = await streamEvents(t.context.redis, t.config.events.streamName);
  for (const e of events.filter((x) => /suspended|reactivated|unlocked|role\.|mfa\.disabled/.test(x.type))) {
    expect(e.raw).not.toMatch(/@example\.com|password|secret/i);
  }
  expect(t.logs.text).not.toContain(admin.stepUp['X-Verification-Token']);
});

test('two admins demoting each other at once: one wins, the other gets 409 last_admin', async () => {
  const x = await signedInAdmin();
  const y = await signedInAdmin();
  // x and y are the only admins for this test.
  const adminRole = t.context.db('roles').where({ name: 'admin' }).select('id');
  const others = await t.context.db('user_roles').whereIn('role_id', adminRole).whereNotIn('user_id', [x.id, y.id]).pluck('user_id');
  await t.context.db('user_roles').whereIn('role_id', adminRole).whereIn('user_id', others).del();
  try {
    const [a, b] = await Promise.all([
      api(`${base(y.id)}/roles/admin`, { method: 'DELETE', headers: x.stepUp }),
      api(`${base(x.id)}/roles/admin`, { method: 'DELETE', headers: y.stepUp }),
    ]);
    // The loser may also have lost its permission by the time it is checked (403).
    expect([a.status, b.status].sort()).toEqual([204, expect.any(Number)]);
    expect([403, 409]).toContain([a.status, b.status].find((st) => st !== 204));
    const left = await t.context
      .db('user_roles')
      .whereIn('role_id', adminRole)
      .whereIn('user_id', [x.id, y.id])
      .count<{ n: number }[]>('* as n');
    expect(left).toEqual([{ n: 1 }]);
  } finally {
    const roleId = (await t.context.db('roles').where({ name: 'admin' }).first('id'))!.id;
    await t.context
      .db('user_roles')
      .insert(others.map((id) => ({ user_id: id, role_id: roleId })))
      .onConflict(['user_id', 'role_id'])
      .ignore();
    for (const id of others) await t.context.permissions.invalidate(id);
  }
});
