// The optional read replica (DATABASE_REPLICA_URL) on a real streaming replica: a PostgreSQL primary
// of this file's own and a hot standby copied from it with pg_basebackup -R. Pausing replay on the
// standby freezes what it shows, which proves where each read goes: the public profile, the session
// list and the reconcilers' scans see the frozen copy, everything else the primary. A standby
// refuses writes, so every flow passing while it is in use proves no write goes there. Then the
// standby is stopped, and later frozen (SIGSTOP, as a partitioned host): its reads fall back to the
// primary with one warning, readiness says so and stays 200, and they return once it is back.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { call, eventually, startTestApp, type TestApp } from '../helpers/app';
import { login } from '../helpers/auth';
import { descendantsOf, startPostgres, type OwnPostgres } from '../helpers/processes';
import { createUser, type TestUser } from '../helpers/users';
import { reconcileExports } from '../../workers/processors/audit-export';
import { jobIds } from '../../shared/queues';
import { checkReplicaSettings } from '../../shared/db';

jest.setTimeout(60_000);

let primary: OwnPostgres;
let standby: OwnPostgres;
let t: TestApp;

const withPath = (url: string, database: string) => {
  const found = new URL(url);
  found.pathname = `/${database}`;
  return found.toString();
};

/** One short connection per question: the standby is stopped later, and a pooled client would see that as an error. */
async function ask<T extends object>(server: OwnPostgres, sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: withPath(server.url, 'user_service') });
  await client.connect();
  try {
    return (await client.query(sql, params)).rows as T[];
  } finally {
    await client.end();
  }
}

/**
 * Waits until the standby has replayed everything the primary has written so far: up to the insert
 * position, since the test cluster commits asynchronously (a commit may not be flushed yet).
 */
async function caughtUp(): Promise<void> {
  const [{ lsn }] = await ask<{ lsn: string }>(primary, 'SELECT pg_current_wal_insert_lsn()::text AS lsn');
  await eventually(async () => {
    const [row] = await ask<{ done: boolean }>(standby, 'SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS done', [lsn]);
    return row.done;
  });
}

async function pauseReplay(): Promise<void> {
  await caughtUp();
  await ask(standby, 'SELECT pg_wal_replay_pause()');
  await eventually(
    async () => (await ask<{ state: string }>(standby, 'SELECT pg_get_wal_replay_pause_state() AS state'))[0].state === 'paused',
  );
}

async function resumeReplay(): Promise<void> {
  await ask(standby, 'SELECT pg_wal_replay_resume()');
  await caughtUp();
}

// A short statement timeout: a read waiting on a frozen replica gives up after it plus 2 s.
const STATEMENT_TIMEOUT = { DATABASE_STATEMENT_TIMEOUT_SECONDS: '1' };

beforeAll(async () => {
  primary = await startPostgres();
  const primaryUrl = await primary.createDatabase('user_service', STATEMENT_TIMEOUT);
  standby = await startPostgres({}, { standbyOf: primary });
  t = await startTestApp(
    { ...STATEMENT_TIMEOUT, DATABASE_REPLICA_URL: withPath(standby.url, 'user_service') },
    { databaseUrl: primaryUrl },
  );
  await t.startWorkers();
  await caughtUp();
}, 120_000);

afterAll(async () => {
  await t?.close();
  await standby?.close();
  await primary?.close();
});

afterEach(async () => {
  // A failed test must not leave replay paused for the next one.
  const [row] = await ask<{ state: string }>(standby, 'SELECT pg_get_wal_replay_pause_state() AS state').catch(() => [{ state: '' }]);
  if (row.state !== 'not paused' && row.state !== '') await resumeReplay();
});

const newUser = async (): Promise<TestUser> => {
  const user = await createUser(t.context.db);
  await caughtUp();
  return user;
};

test('readiness reports the replica, and the start-up check finds it a standby within its budget', async () => {
  const ready = await call(`${t.url}/health/ready`);
  expect(ready.status).toBe(200);
  expect(ready.body.checks).toEqual({ database: 'ok', redis: 'ok', database_replica: 'ok' });
  const [{ standby: inRecovery }] = await ask<{ standby: boolean }>(standby, 'SELECT pg_is_in_recovery() AS standby');
  expect(inRecovery).toBe(true);
  const lines = t.logs.lines.length;
  await checkReplicaSettings(t.context.dbReplica, t.config, t.context.logger);
  expect(t.logs.lines.slice(lines).filter((line) => line.includes('"level":"warn"'))).toEqual([]);
});

test('the public profile is read on the replica; the owner sees the change at once on /users/me', async () => {
  const owner = await login(t.url, await newUser());
  const viewer = await login(t.url, await newUser());
  const profile = `${t.url}/v1/users/profile/${owner.id}`;
  expect((await call(profile, { headers: viewer.auth })).body.name).toBe('Test User');

  await pauseReplay();
  const renamed = await call(`${t.url}/v1/users/me`, { method: 'PATCH', body: { name: 'Renamed Later' }, headers: owner.auth });
  expect(renamed.status).toBe(200);
  expect((await call(`${t.url}/v1/users/me`, { headers: owner.auth })).body.name).toBe('Renamed Later');
  // The owner's own public profile is read on the primary: no one misses their own change.
  expect((await call(profile, { headers: owner.auth })).body.name).toBe('Renamed Later');
  // The replica has not replayed the change: the public profile still shows the old name.
  const stale = await call(profile, { headers: viewer.auth });
  expect(stale.status).toBe(200);
  expect(stale.body.name).toBe('Test User');

  // A user the replica does not have yet is found on the primary: lag never makes a user a 404.
  const newcomer = await createUser(t.context.db);
  const found = await call(`${t.url}/v1/users/profile/${newcomer.id}`, { headers: viewer.auth });
  expect(found.status).toBe(200);
  expect(found.body.id).toBe(newcomer.id);

  await resumeReplay();
  await eventually(async () => (await call(profile, { headers: viewer.auth })).body.name === 'Renamed Later');
});

test('the session list has the current session right after sign-in, and drops a revoked one, while the replica lags', async () => {
  const user = await newUser();
  const first = await login(t.url, user);
  await pauseReplay();

  const second = await login(t.url, user);
  const listed = await call(`${t.url}/v1/auth/sessions`, { headers: second.auth });
  expect(listed.status).toBe(200);
  // The replica does not have `second` yet; it is the caller's own, so it is there all the same.
  expect(listed.body.sessions.map((s: { id: string; current: boolean }) => [s.id, s.current])).toEqual([
    [second.sessionId, true],
    [first.sessionId, false],
  ]);
  // Another device's list is the replica's: the session just started elsewhere is not in it yet.
  const fromFirst = await call(`${t.url}/v1/auth/sessions`, { headers: first.auth });
  expect(fromFirst.body.sessions.map((s: { id: string }) => s.id)).toEqual([first.sessionId]);

  // Revoked on the primary; the replica still shows it live, the list does not.
  expect((await call(`${t.url}/v1/auth/sessions/${first.sessionId}`, { method: 'DELETE', headers: second.auth })).status).toBe(204);
  const [stillLive] = await ask<{ revoked_at: Date | null }>(standby, 'SELECT revoked_at FROM sessions WHERE id = $1', [first.sessionId]);
  expect(stillLive.revoked_at).toBeNull();
  const afterRevoke = await call(`${t.url}/v1/auth/sessions`, { headers: second.auth });
  expect(afterRevoke.body.sessions.map((s: { id: string }) => s.id)).toEqual([second.sessionId]);

  await resumeReplay();
  expect((await call(`${t.url}/v1/auth/sessions`, { headers: second.auth })).body.sessions.map((s: { id: string }) => s.id)).toEqual([
    second.sessionId,
  ]);
});

test('the reconciler scans the replica: a row it has not replayed waits; one it still shows pending costs a job that changes nothing', async () => {
  const user = await newUser();
  const queue = t.context.queues['audit-export'];
  await pauseReplay();
  // Pending for two minutes with no job: lost, as after a Redis data loss.
  const [{ id: exportId }] = await t.context
    .db('audit_exports')
    .insert({
      user_id: user.id,
      format: 'json',
      created_at: t.context.db.raw("now() - interval '2 minutes'"),
      expires_at: t.context.db.raw("now() + interval '1 day'"),
    })
    .returning('id');
  const completedJob = async () => {
    const job = await queue.getJob(jobIds.auditExport(exportId));
    return job && (await job.isCompleted()) && job;
  };
  expect(await reconcileExports(t.context)).toEqual({ requeued: 0 });

  // The replica has the row pending, and keeps showing it so while the job finishes it.
  await resumeReplay();
  await pauseReplay();
  expect(await reconcileExports(t.context)).toEqual({ requeued: 1 });
  const first = await eventually(completedJob);
  expect(first.returnvalue).toMatchObject({ truncated: false });
  const done = await t.context.db('audit_exports').where({ id: exportId }).first();
  expect(done?.status).toBe('ready');

  // Still pending on the replica: enqueued again; the job reads its row on the primary and does nothing.
  expect(await reconcileExports(t.context)).toEqual({ requeued: 1 });
  const second = await eventually(async () => {
    const job = await completedJob();
    return job && job.timestamp > first.timestamp && job;
  });
  expect(second.returnvalue).toBeNull();
  expect(await t.context.db('audit_exports').where({ id: exportId }).first()).toEqual(done);
  await resumeReplay();
  expect(await reconcileExports(t.context)).toEqual({ requeued: 0 });
});

test('every flow passes with the replica in use: no write goes to the standby', async () => {
  const email = `replica-${crypto.randomBytes(3).toString('hex')}@example.com`;
  const registered = await call(`${t.url}/v1/auth/register`, { body: { email, password: 'Correct horse battery 9!', name: 'Replica' } });
  expect(registered.status).toBe(201);
  await eventually(
    async () => (await t.context.db('email_messages').where({ user_id: registered.body.user_id }).first())?.status === 'sent',
  );
  const user = await login(t.url, { id: registered.body.user_id, email, password: 'Correct horse battery 9!' });
  const refreshed = await call(`${t.url}/v1/auth/refresh`, { body: { refresh_token: user.refreshToken } });
  expect(refreshed.status).toBe(200);
  const auth = { Authorization: `Bearer ${refreshed.body.access_token}` };
  expect((await call(`${t.url}/v1/users/profile/${user.id}`, { headers: auth })).status).toBe(200);
  expect((await call(`${t.url}/v1/auth/sessions`, { headers: auth })).status).toBe(200);
  expect((await call(`${t.url}/v1/auth/logout`, { body: {}, headers: auth })).status).toBe(204);
  // A write sent to a standby is refused ("cannot execute … in a read-only transaction"), and logged there.
  expect(standby.log()).not.toMatch(/read-only transaction/);
  // As this one shows: the check above would have seen one.
  await expect(ask(standby, 'UPDATE users SET name = name WHERE id = $1', [user.id])).rejects.toMatchObject({ code: '25006' });
  expect(standby.log()).toMatch(/cannot execute UPDATE in a read-only transaction/);
});

test('replica down: its reads go to the primary with one warning; readiness reports it and stays 200', async () => {
  const owner = await login(t.url, await newUser());
  await call(`${t.url}/v1/users/me`, { method: 'PATCH', body: { name: 'Seen On Primary' }, headers: owner.auth });
  const warnings = () => t.logs.lines.filter((line) => line.includes('read replica unavailable')).length;
  const before = warnings();

  await standby.stop();
  for (let i = 0; i < 5; i++) {
    const profile = await call(`${t.url}/v1/users/profile/${owner.id}`, { headers: owner.auth });
    expect(profile.status).toBe(200);
    expect(profile.body.name).toBe('Seen On Primary');
    const sessions = await call(`${t.url}/v1/auth/sessions`, { headers: owner.auth });
    expect(sessions.status).toBe(200);
    expect(sessions.body.sessions.map((s: { id: string }) => s.id)).toEqual([owner.sessionId]);
  }
  await expect(reconcileExports(t.context)).resolves.toEqual({ requeued: 0 });
  const ready = await call(`${t.url}/health/ready`);
  expect(ready.status).toBe(200);
  expect(ready.body.checks).toEqual({ database: 'ok', redis: 'ok', database_replica: 'down' });
  expect(warnings() - before).toBe(1);
  // A process starting meanwhile starts, with a warning: the replica is never required.
  await checkReplicaSettings(t.context.dbReplica, t.config, t.context.logger);
  expect(t.logs.text).toContain('the read replica does not answer at start');

  await standby.start();
  await eventually(async () => (await call(`${t.url}/health/ready`)).body.checks.database_replica === 'ok', { timeoutMs: 15_000 });
  expect(t.logs.text).toContain('read replica answers again');
  // Back on the replica: a change it has not replayed is not seen by another reader.
  const viewer = await login(t.url, await newUser());
  await pauseReplay();
  await call(`${t.url}/v1/users/me`, { method: 'PATCH', body: { name: 'Not Replayed' }, headers: owner.auth });
  expect((await call(`${t.url}/v1/users/profile/${owner.id}`, { headers: viewer.auth })).body.name).toBe('Seen On Primary');
  await resumeReplay();
});

/** SIGSTOPs every process of the standby (a frozen host: connections accepted, nothing answered); returns the thaw. */
function freeze(server: OwnPostgres): () => void {
  const postmaster = Number(fs.readFileSync(path.join(server.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const pids = [postmaster, ...descendantsOf(postmaster).map((p) => p.pid)];
  for (const pid of pids) process.kill(pid, 'SIGSTOP');
  return () => {
    for (const pid of pids) process.kill(pid, 'SIGCONT');
  };
}

test('replica frozen (a partition): a read gives up on it after the statement timeout plus 2 s and goes to the primary', async () => {
  const owner = await login(t.url, await newUser());
  const viewer = await login(t.url, await newUser());
  const profile = `${t.url}/v1/users/profile/${owner.id}`;
  expect((await call(profile, { headers: viewer.auth })).status).toBe(200);
  const warnings = () => t.logs.lines.filter((line) => line.includes('read replica unavailable')).length;
  const before = warnings();

  const thaw = freeze(standby);
  try {
    for (let i = 0; i < 3; i++) {
      const answer = await call(profile, { headers: viewer.auth });
      expect(answer.status).toBe(200);
      expect(answer.body.name).toBe('Test User');
    }
    expect(warnings() - before).toBe(1);
    expect(t.logs.text).toContain('no answer from the read replica in 3000 ms');
    const ready = await call(`${t.url}/health/ready`);
    expect(ready.status).toBe(200);
    expect(ready.body.checks.database_replica).toBe('down');
  } finally {
    thaw();
  }
  await eventually(async () => (await call(`${t.url}/health/ready`)).body.checks.database_replica === 'ok', { timeoutMs: 15_000 });
});
