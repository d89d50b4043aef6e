// A worker SIGKILLed in the middle of an export (its file already in Redis, its row not yet marked
// ready): the export still completes, through another worker, with the whole file.
import type { ChildProcess } from 'node:child_process';
import { call, eventually, startTestApp, startWorkerProcess, type TestApp } from '../helpers/app';
import { signedInUser } from '../helpers/auth';
import { terminate } from '../helpers/processes';

jest.setTimeout(90_000);

let t: TestApp;
const children: ChildProcess[] = [];

beforeAll(async () => {
  // No workers in this process: the export runs only in the worker processes the test starts.
  t = await startTestApp();
});
afterAll(async () => {
  for (const child of children) await terminate(child, 'SIGKILL');
  await t.close();
});

/** A worker process running only the audit-export queue, on this test's database and prefixes. */
async function startWorker(): Promise<ChildProcess> {
  const child = await startWorkerProcess(t, { WORKER_QUEUES: 'audit-export', JOB_LOCK_MS: '2000' });
  children.push(child);
  return child;
}

test('a worker SIGKILLed mid-export: the export still completes', async () => {
  const me = await signedInUser(t.context.db, t.url);
  await t.context.db.raw(
    `INSERT INTO events (id, type, user_id, actor_id, data, occurred_at)
     SELECT gen_random_uuid(), 'user.login', ?::uuid, ?::uuid, jsonb_build_object('n', g), timestamptz '2026-10-01' + make_interval(secs => g)
     FROM generate_series(1, 5000) AS g`,
    [me.id, me.id],
  );
  const expected = Number((await t.context.db('events').where({ user_id: me.id }).count({ n: '*' }))[0].n);
  const posted = await call(`${t.url}/v1/audit/export`, { body: { format: 'json' }, headers: me.auth });
  expect(posted.status).toBe(202);
  const id = posted.body.export_id as string;

  // Hold the row, so the worker stops between writing the file and marking the row ready.
  const hold = await t.context.db.transaction();
  await hold('audit_exports').where({ id }).forUpdate().first();
  const first = await startWorker();
  const waiting = await eventually(
    async () => {
      const { rows } = await t.context.db.raw(
        `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE 'update "audit_exports"%'`,
      );
      return (rows as { pid: number }[]).length ? (rows as { pid: number }[]) : null;
    },
    { timeoutMs: 30_000 },
  );
  expect(await t.context.redis.exists(t.context.key('audit-export', id))).toBe(1);

  expect(await terminate(first, 'SIGKILL')).toBe('SIGKILL');
  // Its connections die with it (PostgreSQL would notice only at its next write to the socket).
  for (const { pid } of waiting) await t.context.db.raw('SELECT pg_terminate_backend(?)', [pid]);
  await hold.rollback();
  expect(await t.context.db('audit_exports').where({ id }).first()).toMatchObject({ status: 'pending' });
  expect((await call(`${t.url}/v1/audit/export/${id}`, { headers: me.auth })).status).toBe(202);

  // Another worker finds the job stalled once the dead one's lock lapses, and finishes it.
  await startWorker();
  const done = await eventually(
    async () => {
      const r = await call(`${t.url}/v1/audit/export/${id}`, { headers: me.auth });
      return r.status === 200 ? r : null;
    },
    { timeoutMs: 40_000, intervalMs: 200 },
  );
  expect(done.body).toHaveLength(expected);
  expect(done.headers.get('x-export-event-count')).toBe(String(expected));
  expect(await t.context.db('audit_exports').where({ id }).first()).toMatchObject({ status: 'ready', event_count: expected });
});
