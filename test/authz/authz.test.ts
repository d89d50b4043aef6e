// RBAC: effective permissions from roles (with inheritance) and direct grants; the cached check
// is right at once after every change, on every api copy, and an expired grant never counts.
import { call, startTestApp, type TestApp } from '../helpers/app';
import { signedInUser, type SignedIn } from '../helpers/auth';
import { setRole } from '../../shared/users/roles';

let t: TestApp;
let copy: TestApp;
let admin: SignedIn;
beforeAll(async () => {
  t = await startTestApp();
  // A second api copy on the same database and Redis.
  copy = await startTestApp(
    { REDIS_KEY_PREFIX: t.config.redis.keyPrefix, BULLMQ_PREFIX: t.config.queues.prefix, EVENTS_STREAM_NAME: t.config.events.streamName },
    { databaseUrl: t.config.database.url },
  );
  admin = await signedInUser(t.context.db, t.url, { roles: ['admin'] });
});
afterAll(async () => {
  await copy.close();
  await t.close();
});

const check = (app: TestApp, who: SignedIn, permission: string, userId?: string) =>
  call(`${app.url}/v1/authz/check`, { body: { permission, ...(userId && { user_id: userId }) }, headers: who.auth });
const grant = (body: Record<string, unknown>) => call(`${t.url}/v1/authz/permissions`, { body, headers: admin.auth });

test("the caller's check follows the role hierarchy", async () => {
  const viewer = await signedInUser(t.context.db, t.url, { roles: ['viewer'] });
  expect((await check(t, viewer, 'market_data:read')).body).toEqual({ allowed: true, permission: 'market_data:read', user_id: viewer.id });
  expect((await check(t, viewer, 'orders:write')).body.allowed).toBe(false);
  expect((await check(t, admin, 'orders:write')).body.allowed).toBe(true);
  expect((await check(t, admin, 'no_such:thing')).body.allowed).toBe(false);
});

test('a grant with an expiry a few seconds ahead counts, then stops counting without any other call', async () => {
  const viewer = await signedInUser(t.context.db, t.url, { roles: ['viewer'] });
  expect((await check(t, viewer, 'orders:write')).body.allowed).toBe(false);
  const expiresAt = new Date(Date.now() + 2500).toISOString();
  const r = await grant({ user_id: viewer.id, permission: 'orders:write', expires_at: expiresAt });
  expect(r.status).toBe(201);
  expect(r.body).toEqual({
    id: expect.any(String),
    user_id: viewer.id,
    permission: 'orders:write',
    expires_at: expiresAt,
    granted_by: admin.id,
    granted_at: expect.any(String),
  });
  expect((await check(t, viewer, 'orders:write')).body.allowed).toBe(true);
  expect((await check(copy, viewer, 'orders:write')).body.allowed).toBe(true);
  await new Promise((resolve) => setTimeout(resolve, 3000));
  expect((await check(t, viewer, 'orders:write')).body.allowed).toBe(false);
  expect((await check(copy, viewer, 'orders:write')).body.allowed).toBe(false);
});

test('revoking makes the check false at once, on every copy', async () => {
  const viewer = await signedInUser(t.context.db, t.url, { roles: ['viewer'] });
  const r = await grant({ user_id: viewer.id, permission: 'alerts:write' });
  expect((await check(copy, viewer, 'alerts:write')).body.allowed).toBe(true);
  const listed = await call(`${t.url}/v1/authz/permissions`, { headers: viewer.auth });
  expect(listed.body.permissions).toContainEqual({ name: 'alerts:write', source: 'direct', id: r.body.id, expires_at: null });
  expect(listed.body.permissions).toContainEqual({ name: 'market_data:read', source: 'role:viewer', id: null, expires_at: null });
  expect((await call(`${t.url}/v1/authz/permissions/${r.body.id}`, { method: 'DELETE', headers: admin.auth })).status).toBe(204);
  expect((await check(copy, viewer, 'alerts:write')).body.allowed).toBe(false);
  expect((await check(t, viewer, 'alerts:write')).body.allowed).toBe(false);
  expect((await call(`${t.url}/v1/authz/permissions/${r.body.id}`, { method: 'DELETE', headers: admin.auth })).status).toBe(404);
});

test('a signed-out session gets 401 from the check at once, on every copy, though its token was verified before', async () => {
  const viewer = await signedInUser(t.context.db, t.url, { roles: ['viewer'] });
  expect((await check(t, viewer, 'market_data:read')).body.allowed).toBe(true);
  expect((await check(copy, viewer, 'market_data:read')).body.allowed).toBe(true);
  expect((await call(`${t.url}/v1/auth/logout`, { method: 'POST', body: {}, headers: viewer.auth })).status).toBe(204);
  for (const app of [t, copy]) {
    const r = await check(app, viewer, 'market_data:read');
    expect(r.status).toBe(401);
    expect(r.body).not.toHaveProperty('allowed');
  }
});

test('a user id in upper case is the same user: one answer, and a revocation is seen at once (red team #1)', async () => {
  const viewer = await signedInUser(t.context.db, t.url, { roles: ['viewer'] });
  const upper = viewer.id.toUpperCase();
  const r = await grant({ user_id: upper, permission: 'alerts:write' });
  expect(r.status).toBe(201);
  expect(r.body.user_id).toBe(viewer.id);
  expect((await check(t, admin, 'alerts:write', upper)).body).toEqual({ allowed: true, permission: 'alerts:write', user_id: viewer.id });
  expect((await call(`${t.url}/v1/authz/permissions/${r.body.id.toUpperCase()}`, { method: 'DELETE', headers: admin.auth })).status).toBe(
    204,
  );
  expect((await check(t, admin, 'alerts:write', upper)).body.allowed).toBe(false);
  expect((await check(copy, admin, 'alerts:write', upper)).body.allowed).toBe(false);
  // Checking one's own id, however it is written, needs no authz:check_any.
  const trader = await signedInUser(t.context.db, t.url);
  expect((await check(t, trader, 'orders:write', trader.id.toUpperCase())).body).toEqual({
    allowed: true,
    permission: 'orders:write',
    user_id: trader.id,
  });
});

test('a role change shows at once', async () => {
  const user = await signedInUser(t.context.db, t.url, { roles: ['viewer'] });
  expect((await check(copy, user, 'orders:write')).body.allowed).toBe(false);
  await setRole(t.context.db, t.context.permissions, { email: user.email, role: 'trader', assign: true });
  expect((await check(copy, user, 'orders:write')).body.allowed).toBe(true);
  await setRole(t.context.db, t.context.permissions, { email: user.email, role: 'trader', assign: false });
  expect((await check(t, user, 'orders:write')).body.allowed).toBe(false);
});

test('grants are checked: unknown permission 400, unknown user 404, a past expiry 400', async () => {
  const viewer = await signedInUser(t.context.db, t.url, { roles: ['viewer'] });
  expect((await grant({ user_id: viewer.id, permission: 'nope:nothing' })).status).toBe(400);
  expect((await grant({ user_id: '00000000-0000-4000-8000-000000000000', permission: 'orders:write' })).status).toBe(404);
  const past = await grant({ user_id: viewer.id, permission: 'orders:write', expires_at: new Date(Date.now() - 1000).toISOString() });
  expect(past.status).toBe(400);
  expect(past.body.errors).toEqual([{ field: 'expires_at', message: 'must be in the future' }]);
  expect(await t.context.db('user_permissions').where({ user_id: viewer.id }).first()).toBeUndefined();
});

test('checking another user needs authz:check_any (admins and services have it)', async () => {
  const trader = await signedInUser(t.context.db, t.url);
  const other = await signedInUser(t.context.db, t.url, { roles: ['viewer'] });
  expect((await check(t, trader, 'orders:read', other.id)).status).toBe(403);
  expect((await call(`${t.url}/v1/authz/permissions?user_id=${other.id}`, { headers: trader.auth })).status).toBe(403);
  expect((await check(t, admin, 'orders:write', other.id)).body).toEqual({ allowed: false, permission: 'orders:write', user_id: other.id });
  expect((await call(`${t.url}/v1/authz/permissions?user_id=${other.id}`, { headers: admin.auth })).status).toBe(200);
  expect((await check(t, admin, 'orders:write', '00000000-0000-4000-8000-000000000000')).status).toBe(404);
});

test('a suspended user holds no permission', async () => {
  const trader = await signedInUser(t.context.db, t.url);
  expect((await check(t, admin, 'orders:write', trader.id)).body.allowed).toBe(true);
  await t.context.db('users').where({ id: trader.id }).update({ status: 'suspended' });
  await t.context.permissions.invalidate(trader.id);
  expect((await check(t, admin, 'orders:write', trader.id)).body).toEqual({
    allowed: false,
    permission: 'orders:write',
    user_id: trader.id,
  });
});

test('granting a permission twice changes the one grant, so one revocation ends it', async () => {
  const viewer = await signedInUser(t.context.db, t.url, { roles: ['viewer'] });
  const first = await grant({ user_id: viewer.id, permission: 'alerts:write', expires_at: new Date(Date.now() + 60_000).toISOString() });
  const second = await grant({ user_id: viewer.id, permission: 'alerts:write' });
  expect(second.status).toBe(201);
  expect(second.body.id).toBe(first.body.id);
  expect(second.body.expires_at).toBeNull();
  expect((await call(`${t.url}/v1/authz/permissions/${first.body.id}`, { method: 'DELETE', headers: admin.auth })).status).toBe(204);
  expect((await check(t, viewer, 'alerts:write')).body.allowed).toBe(false);
});
