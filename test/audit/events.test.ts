// GET /v1/audit/events: a user's trail from PostgreSQL, filtered, paged by offset and by cursor,
// with totals; other users' events never appear; holders of audit:read_any may name a user;
// bad filters are refused naming the parameter; a page is an index range scan (EXPLAIN).
import crypto from 'node:crypto';
import { call, startTestApp, type TestApp } from '../helpers/app';
import { login, signedInUser, type SignedIn } from '../helpers/auth';
import { createUser, type TestUser } from '../helpers/users';
import { countQuery, matchingEvents } from '../../shared/audit/query';

let t: TestApp;
let me: SignedIn;
let other: TestUser;
let bystander: string;
let admin: SignedIn;

interface Seeded {
  id: string;
  type: string;
  user_id: string | null;
  actor_id: string | null;
  occurred_at: Date;
  seq?: number;
}
let mine: Seeded[] = [];

const TYPES = ['user.login', 'session.created', 'user.updated', 'password.changed', 'session.revoked'];
const BASE = Date.parse('2026-10-01T00:00:00Z');

async function seed(rows: Omit<Seeded, 'id'>[]): Promise<Seeded[]> {
  const withIds = rows.map((r) => ({ id: crypto.randomUUID(), ...r }));
  const inserted: Seeded[] = [];
  for (let i = 0; i < withIds.length; i += 500) {
    const chunk = withIds.slice(i, i + 500).map((r) => ({ ...r, ip: '10.0.0.1', user_agent: 'seed', data: { n: 1 } }));
    const returned: Seeded[] = await t.context
      .db('events')
      .insert(chunk as never)
      .returning(['id', 'type', 'user_id', 'actor_id', 'occurred_at', 'seq']);
    inserted.push(...returned);
  }
  return inserted;
}

/** Newest first, ties in insertion order reversed: the order the endpoint promises. */
const newestFirst = (a: Seeded, b: Seeded) => b.occurred_at.getTime() - a.occurred_at.getTime() || Number(b.seq) - Number(a.seq);

beforeAll(async () => {
  t = await startTestApp();
  me = await signedInUser(t.context.db, t.url);
  other = await createUser(t.context.db);
  admin = await signedInUser(t.context.db, t.url, { roles: ['admin'] });
  bystander = crypto.randomUUID();
  const rows: Omit<Seeded, 'id'>[] = [];
  for (let i = 0; i < 300; i += 1) {
    // Every tenth event shares its time with the previous one (events of one transaction do).
    const at = new Date(BASE + (i - (i % 10 === 0 ? 1 : 0)) * 60_000);
    rows.push({ type: TYPES[i % TYPES.length], user_id: me.id, actor_id: me.id, occurred_at: at });
    rows.push({ type: TYPES[i % TYPES.length], user_id: other.id, actor_id: other.id, occurred_at: at });
  }
  // What I did to someone else is in my trail; what someone did to me is too.
  for (let i = 0; i < 20; i += 1) {
    rows.push({ type: 'permission.granted', user_id: bystander, actor_id: me.id, occurred_at: new Date(BASE + (i * 15 + 7) * 60_000) });
    rows.push({ type: 'permission.granted', user_id: me.id, actor_id: admin.id, occurred_at: new Date(BASE + (i * 15 + 8) * 60_000) });
  }
  const all = await seed(rows);
  // The sign-in of beforeAll wrote events too (login, session); they belong to the trail.
  const real = (await t.context
    .db('events')
    .where({ user_id: me.id })
    .whereNotIn(
      'id',
      all.map((r) => r.id),
    )) as Seeded[];
  mine = [...all, ...real].filter((r) => r.user_id === me.id || r.actor_id === me.id).sort(newestFirst);
});
afterAll(() => t.close());

const get = (query: string, who: SignedIn = me) => call(`${t.url}/v1/audit/events${query}`, { headers: who.auth });

test('offset pages walk the whole trail newest first, with the total on every page', async () => {
  const seen: string[] = [];
  for (let offset = 0; offset < mine.length; offset += 37) {
    const r = await get(`?limit=37&offset=${offset}`);
    expect(r.status).toBe(200);
    expect(r.body.total).toBe(mine.length);
    expect(r.body).toMatchObject({ limit: 37, offset });
    seen.push(...r.body.events.map((e: { id: string }) => e.id));
  }
  expect(seen).toEqual(mine.map((r) => r.id));
});

test('cursor pages walk the same order, ties included, and the last has no next_cursor', async () => {
  const seen: string[] = [];
  let cursor = '';
  for (let pages = 0; pages < 100; pages += 1) {
    const r = await get(`?limit=41${cursor ? `&cursor=${cursor}` : ''}`);
    expect(r.status).toBe(200);
    expect(r.body.total).toBe(mine.length);
    seen.push(...r.body.events.map((e: { id: string }) => e.id));
    if (!r.body.next_cursor) break;
    cursor = r.body.next_cursor;
  }
  expect(seen).toEqual(mine.map((r) => r.id));
});

test('the default page is the newest 50, each item with its fields and nothing else', async () => {
  const r = await get('');
  expect(r.status).toBe(200);
  expect(r.body.events).toHaveLength(50);
  expect(r.body.limit).toBe(50);
  expect(Object.keys(r.body.events[0]).sort()).toEqual(['actor_id', 'data', 'id', 'ip', 'occurred_at', 'type', 'user_agent', 'user_id']);
  expect(r.body.events[0].id).toBe(mine[0].id);
});

test('filters by several types and a time range, inclusive bounds, with a matching total', async () => {
  const from = new Date(BASE + 100 * 60_000);
  const to = new Date(BASE + 200 * 60_000);
  const wanted = mine.filter((r) => ['user.login', 'permission.granted'].includes(r.type) && r.occurred_at >= from && r.occurred_at <= to);
  const r = await get(`?event_type=user.login&event_type=permission.granted&from=${from.toISOString()}&to=${to.toISOString()}&limit=100`);
  expect(r.status).toBe(200);
  expect(r.body.total).toBe(wanted.length);
  expect(r.body.events.map((e: { id: string }) => e.id)).toEqual(wanted.map((w) => w.id));
  const one = await get('?event_type=password.changed&limit=100');
  expect(one.body.total).toBe(mine.filter((m) => m.type === 'password.changed').length);
  expect(new Set(one.body.events.map((e: { type: string }) => e.type))).toEqual(new Set(['password.changed']));
});

test("other users' events never appear; events I caused about someone else do", async () => {
  const ids = new Set<string>();
  for (let offset = 0; offset < mine.length; offset += 100) {
    const r = await get(`?limit=100&offset=${offset}`);
    for (const e of r.body.events as { id: string; user_id: string; actor_id: string }[]) {
      expect(e.user_id === me.id || e.actor_id === me.id).toBe(true);
      ids.add(e.id);
    }
  }
  const others = await t.context.db('events').where({ user_id: other.id }).pluck('id');
  expect(others).toHaveLength(300);
  for (const id of others) expect(ids.has(id)).toBe(false);
  const caused = (await get('?event_type=permission.granted&limit=100')).body.events as { user_id: string; actor_id: string }[];
  expect(caused.filter((e) => e.user_id === bystander && e.actor_id === me.id)).toHaveLength(20);
  expect(caused.filter((e) => e.user_id === me.id && e.actor_id === admin.id)).toHaveLength(20);
});

test('holders of audit:read_any see a named user; traders get 403; an unknown user is 404', async () => {
  const r = await get(`?user_id=${me.id}&limit=100`, admin);
  expect(r.status).toBe(200);
  expect(r.body.total).toBe(mine.length);
  expect(r.body.events.map((e: { id: string }) => e.id)).toEqual(mine.slice(0, 100).map((m) => m.id));

  const trader = await login(t.url, other);
  const denied = await get(`?user_id=${me.id}`, trader);
  expect(denied.status).toBe(403);
  expect(denied.body.detail).toContain('audit:read_any');
  // Naming oneself needs nothing.
  expect((await get(`?user_id=${other.id}`, trader)).status).toBe(200);

  expect((await get(`?user_id=${crypto.randomUUID()}`, admin)).status).toBe(404);
  expect((await call(`${t.url}/v1/audit/events`)).status).toBe(401);
});

test.each([
  ['?limit=0', 'query.limit'],
  ['?limit=101', 'query.limit'],
  ['?offset=-1', 'query.offset'],
  ['?event_type=user.hacked', 'query.event_type'],
  ['?from=yesterday', 'query.from'],
  ['?to=2026-13-01T00:00:00Z', 'query.to'],
  ['?user_id=nope', 'query.user_id'],
  ['?cursor=bm9wZQ', 'query.cursor'],
  ['?from=2026-10-02T00:00:00Z&to=2026-10-01T00:00:00Z', 'to'],
  ['?sort=asc', 'query.sort'],
])('%s is refused with 400 naming %s', async (query, field) => {
  const r = await get(query);
  expect(r.status).toBe(400);
  expect(r.headers.get('content-type')).toContain('application/problem+json');
  expect(r.body.errors.map((e: { field: string }) => e.field)).toContain(field);
});

test('offset and cursor together are refused naming offset', async () => {
  const first = await get('?limit=5');
  const r = await get(`?limit=5&offset=5&cursor=${first.body.next_cursor}`);
  expect(r.status).toBe(400);
  expect(r.body.errors[0].field).toBe('offset');
});

describe('on a table of many rows', () => {
  const heavy = crypto.randomUUID();
  beforeAll(async () => {
    // 200,000 events of 2,000 other users, and a user with 10,000 events (500 of them about
    // others): enough that a sequential scan or a sort would show in the plan.
    await t.context.db.raw(`
      INSERT INTO events (id, type, user_id, actor_id, data, occurred_at)
      SELECT gen_random_uuid(), 'user.login', u, u, '{}'::jsonb, timestamptz '2026-01-01' + make_interval(secs => g)
      FROM generate_series(1, 200000) AS g,
           LATERAL (SELECT md5((g % 2000)::text)::uuid AS u) AS users`);
    await t.context.db.raw(
      `INSERT INTO events (id, type, user_id, actor_id, data, occurred_at)
       SELECT gen_random_uuid(), 'user.login', CASE WHEN g % 20 = 0 THEN md5(g::text)::uuid ELSE ?::uuid END, ?::uuid, '{}'::jsonb,
              timestamptz '2026-01-01' + make_interval(secs => g * 7)
       FROM generate_series(1, 10000) AS g`,
      [heavy, heavy],
    );
    // As autovacuum leaves a table that grew over time (the visibility map allows index-only scans).
    await t.context.db.raw('VACUUM ANALYZE events');
  }, 120_000);

  async function plan(query: { toString(): string }): Promise<string> {
    const result = await t.context.db.raw(`EXPLAIN ${query.toString()}`);
    return (result.rows as { 'QUERY PLAN': string }[]).map((r) => r['QUERY PLAN']).join('\n');
  }

  test("a user's first page and a cursor page are ordered index range scans: no sequential scan, no sort", async () => {
    const filter = { subjectId: heavy };
    const first = await plan(matchingEvents(t.context.db, filter, { limit: 51 }));
    const deep = await plan(
      matchingEvents(t.context.db, filter, { limit: 51, after: { at: '2026-01-01T10:00:00.000000Z', key: '205000' } }),
    );
    for (const text of [first, deep]) {
      expect(text).toMatch(/Index Scan Backward using events_user_page_idx/);
      expect(text).toMatch(/Index Scan Backward using events_actor_page_idx/);
      expect(text).toMatch(/Merge Append/);
      expect(text).not.toMatch(/Seq Scan/);
      // A Sort node (not Merge Append's sort key) would mean reading every event of the user.
      expect(text).not.toMatch(/Bitmap|->\s+Sort\b/);
    }
    expect(deep).toMatch(/Index Cond: .*occurred_at, .*seq\) < /);
  });

  test('the total is counted from the two indexes alone', async () => {
    const text = await plan(countQuery(t.context.db, { subjectId: heavy }));
    expect(text).toMatch(/Index Only Scan using events_user_page_idx/);
    expect(text).toMatch(/Index Only Scan using events_actor_page_idx/);
    expect(text).not.toMatch(/Seq Scan/);
  });
});
