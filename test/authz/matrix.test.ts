// The authorization matrix: every endpoint × (anonymous, viewer, trader, admin), each acting on
// its own data or another user's. No one reads or changes another's data without the permission.
import { call, startTestApp, type TestApp } from '../helpers/app';
import { operatorSignIn, signedInUser, type SignedIn } from '../helpers/auth';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ RATELIMIT_LOGIN_IP_ATTEMPTS: '10000' });
});
afterAll(() => t.close());

type Role = 'viewer' | 'trader' | 'admin';
const ROLES: Role[] = ['viewer', 'trader', 'admin'];

interface Cell {
  name: string;
  /** Builds the request for `me`, with `other` as another user (each cell gets fresh ones). */
  request(
    me: SignedIn,
    other: SignedIn,
  ): Promise<{ method: string; path: string; body?: unknown }> | { method: string; path: string; body?: unknown };
  expect: Record<Role, number>;
}

const all = (status: number): Record<Role, number> => ({ viewer: status, trader: status, admin: status });
const adminOnly = (ok: number): Record<Role, number> => ({ viewer: 403, trader: 403, admin: ok });

const grantFor = async (userId: string) => {
  const [row] = await t.context
    .db('user_permissions')
    .insert({ user_id: userId, permission_id: t.context.db.raw(`(SELECT id FROM permissions WHERE name = 'alerts:write')`) })
    .returning('id');
  return row.id;
};

const CELLS: Cell[] = [
  { name: 'list my sessions', request: () => ({ method: 'GET', path: '/v1/auth/sessions' }), expect: all(200) },
  { name: 'revoke my own session', request: (me) => ({ method: 'DELETE', path: `/v1/auth/sessions/${me.sessionId}` }), expect: all(204) },
  {
    name: "revoke another user's session",
    request: (_me, other) => ({ method: 'DELETE', path: `/v1/auth/sessions/${other.sessionId}` }),
    expect: all(404),
  },
  { name: 'log out', request: () => ({ method: 'POST', path: '/v1/auth/logout', body: {} }), expect: all(204) },
  { name: 'read my profile', request: () => ({ method: 'GET', path: '/v1/users/me' }), expect: all(200) },
  { name: 'change my profile', request: () => ({ method: 'PATCH', path: '/v1/users/me', body: { name: 'New Name' } }), expect: all(200) },
  {
    name: 'delete my account',
    request: (me) => ({ method: 'DELETE', path: '/v1/users/me', body: { password: me.password } }),
    expect: all(204),
  },
  { name: 'read a public profile', request: (_me, other) => ({ method: 'GET', path: `/v1/users/profile/${other.id}` }), expect: all(200) },
  {
    name: 'check my permission',
    request: () => ({ method: 'POST', path: '/v1/authz/check', body: { permission: 'orders:read' } }),
    expect: all(200),
  },
  {
    name: "check another user's permission",
    request: (_me, other) => ({ method: 'POST', path: '/v1/authz/check', body: { permission: 'orders:read', user_id: other.id } }),
    expect: adminOnly(200),
  },
  { name: 'list my permissions', request: () => ({ method: 'GET', path: '/v1/authz/permissions' }), expect: all(200) },
  {
    name: "list another user's permissions",
    request: (_me, other) => ({ method: 'GET', path: `/v1/authz/permissions?user_id=${other.id}` }),
    expect: adminOnly(200),
  },
  {
    name: 'grant a permission to another user',
    request: (_me, other) => ({ method: 'POST', path: '/v1/authz/permissions', body: { user_id: other.id, permission: 'alerts:write' } }),
    expect: adminOnly(201),
  },
  {
    name: 'grant a permission to myself',
    request: (me) => ({ method: 'POST', path: '/v1/authz/permissions', body: { user_id: me.id, permission: 'users:admin' } }),
    expect: adminOnly(201),
  },
  {
    name: "revoke another user's grant",
    request: async (_me, other) => ({ method: 'DELETE', path: `/v1/authz/permissions/${await grantFor(other.id)}` }),
    expect: adminOnly(204),
  },
  // Account lifecycle: the admin API (writes need a step-up token besides users:admin).
  { name: 'search users', request: () => ({ method: 'GET', path: '/v1/admin/users' }), expect: adminOnly(200) },
  {
    name: "read another user's account",
    request: (_me, other) => ({ method: 'GET', path: `/v1/admin/users/${other.id}` }),
    expect: adminOnly(200),
  },
  {
    name: 'suspend another user without a step-up token',
    request: (_me, other) => ({ method: 'POST', path: `/v1/admin/users/${other.id}/suspend`, body: { reason_code: 'other' } }),
    expect: all(403),
  },
  {
    name: "end another user's sessions without a step-up token",
    request: (_me, other) => ({ method: 'DELETE', path: `/v1/admin/users/${other.id}/sessions` }),
    expect: all(403),
  },
];

describe.each(CELLS)('$name', (cell) => {
  test('anonymous: 401', async () => {
    const me = await signedInUser(t.context.db, t.url);
    const other = await signedInUser(t.context.db, t.url);
    const { method, path, body } = await cell.request(me, other);
    const r = await call(`${t.url}${path}`, { method, body });
    expect(r.status).toBe(401);
  });

  test.each(ROLES)('%s', async (role) => {
    const me = await signedInUser(t.context.db, t.url, { roles: [role] });
    const other = await signedInUser(t.context.db, t.url, { roles: ['trader'] });
    const { method, path, body } = await cell.request(me, other);
    const r = await call(`${t.url}${path}`, { method, body, headers: me.auth });
    expect({ status: r.status, body: r.status >= 400 ? r.body : undefined }).toMatchObject({ status: cell.expect[role] });
    // Whatever happened, the other user's session still works.
    expect((await call(`${t.url}/v1/auth/sessions`, { headers: other.auth })).status).toBe(200);
  });
});

test('every bearer endpoint of the service answers 401 without a token', async () => {
  const bearer = t.app.registry.routes.filter((r) => r.security === 'bearer');
  expect(bearer.length).toBeGreaterThanOrEqual(11);
  for (const route of bearer) {
    const path = route.path.replace(/:[a-z_]+/g, '00000000-0000-4000-8000-000000000000');
    const r = await call(`${t.url}${path}`, { method: route.method.toUpperCase(), ...(route.body && { body: {} }) });
    expect([route.path, r.status]).toEqual([route.path, 401]);
  }
});

test("Bull Board through the operators' sign-in: admins only", async () => {
  for (const role of ROLES) {
    const me = await signedInUser(t.context.db, t.url, { roles: [role] });
    const { cookie, reply } = await operatorSignIn(t.url, me);
    expect([role, reply.status]).toEqual([role, role === 'admin' ? 200 : 401]);
    const r = await call(`${t.url}/admin/queues/api/queues?activeQueue=email&status=latest&page=1`, {
      headers: cookie ? { Cookie: cookie } : {},
    });
    expect([role, r.status]).toEqual([role, role === 'admin' ? 200 : 401]);
  }
});
