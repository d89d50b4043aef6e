// The service behind Redis Sentinel (a primary, its replica and three sentinels of the test's own),
// with an api and a worker compiled as in production: the primary is stopped mid-load, the
// sentinels promote the replica, and the service follows. What it may cost: 503s for a few
// seconds, readiness 503 meanwhile. What it may not: a 500, a READONLY that lasts (the old primary
// comes back as a replica), a worker that stops sending, a revocation forgotten.
import crypto from 'node:crypto';
import { call, createTestDatabase, dropTestDatabase, eventually, loadTestEnvironment } from '../helpers/app';
import { startSentinelSet, startServiceProcess, type OwnSentinelSet, type ServiceProcess } from '../helpers/processes';
import { startSmtp, type TestSmtp } from '../helpers/smtp';
import { createUser } from '../helpers/users';
import { parseConfig } from '../../shared/config';
import { createDb, type Db } from '../../shared/db';

jest.setTimeout(300_000);

const PASSWORD = 'Correct horse battery 9!';

let set: OwnSentinelSet;
let smtp: TestSmtp;
let database: string;
let db: Db;
let api: ServiceProcess;
let worker: ServiceProcess;

beforeAll(async () => {
  [set, smtp, database] = await Promise.all([startSentinelSet(), startSmtp(), createTestDatabase()]);
  const env = loadTestEnvironment(database, {
    ...smtp.env(),
    ...set.env(),
    // Jobs enqueued on the old primary in its last moments are lost with it: the reconciler
    // re-enqueues their rows once they are RECONCILE_AFTER_SECONDS old.
    RECONCILE_INTERVAL_SECONDS: '5',
    RECONCILE_AFTER_SECONDS: '10',
  });
  db = createDb(parseConfig(env));
  [api, worker] = await Promise.all([startServiceProcess('api', env), startServiceProcess('worker', env)]);
}, 120_000);

afterAll(async () => {
  for (const p of [api, worker]) p?.child.kill('SIGKILL');
  await db?.destroy();
  await Promise.all([set?.close(), smtp?.close()]);
  if (database) await dropTestDatabase(database);
});

interface Sample {
  at: number;
  status: number;
  what: 'register' | 'ready';
}

test('a failover mid-load: 503 for a few seconds only, readiness 503 meanwhile, workers resume, revocations kept', async () => {
  const run = crypto.randomBytes(3).toString('hex');
  // A session signed out before the failover.
  const user = await createUser(db, { password: PASSWORD });
  const login = await call(`${api.url}/v1/auth/login`, { body: { email: user.email, password: PASSWORD } });
  expect(login.status).toBe(200);
  const auth = { Authorization: `Bearer ${login.body.access_token as string}` };
  expect((await call(`${api.url}/v1/auth/logout`, { body: {}, headers: auth })).status).toBe(204);

  const samples: Sample[] = [];
  const registered: string[] = [];
  let running = true;
  let n = 0;
  const register = async () => {
    while (running) {
      const email = `sentinel-${run}-${(n += 1)}@example.com`;
      const r = await call(`${api.url}/v1/auth/register`, { body: { email, password: PASSWORD, name: 'Sentinel' } });
      samples.push({ at: Date.now(), status: r.status, what: 'register' });
      if (r.status === 201) registered.push(email);
    }
  };
  const probeReadiness = async () => {
    while (running) {
      samples.push({ at: Date.now(), status: (await call(`${api.url}/health/ready`)).status, what: 'ready' });
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  const load = Promise.all([register(), register(), register(), probeReadiness()]);

  await eventually(() => registered.length >= 20, { timeoutMs: 30_000 });
  const stoppedAt = Date.now();
  await set.primary.stop();
  await eventually(async () => (await set.currentPrimaryPort()) === set.replica.port, { timeoutMs: 30_000, intervalMs: 200 });
  // The old primary comes back; the sentinels make it a replica of the new one.
  await set.primary.start();
  const before = registered.length;
  await eventually(() => registered.length >= before + 20, { timeoutMs: 30_000 });
  running = false;
  await load;

  const statuses = (what: Sample['what']) => samples.filter((s) => s.what === what && s.at >= stoppedAt);
  // Nothing but success or 503: never a 500, never a lasting READONLY.
  expect(samples.filter((s) => s.what === 'register' && s.status !== 201 && s.status !== 503)).toEqual([]);
  const refused = statuses('register').filter((s) => s.status === 503);
  const window = refused.length ? refused[refused.length - 1].at - refused[0].at : 0;
  expect(window).toBeLessThan(5_000);
  // Readiness said so while Redis took no writes, and is ok again.
  expect(statuses('ready').some((s) => s.status === 503)).toBe(true);
  expect((await call(`${api.url}/health/ready`)).status).toBe(200);

  // The worker resumed: every accepted registration got its email, those whose job the failover
  // lost through the reconciler.
  const mine = () => new Set(smtp.messages.flatMap((m) => m.to).filter((to) => to.startsWith(`sentinel-${run}-`)));
  await eventually(() => mine().size >= registered.length, { timeoutMs: 120_000 });
  expect([...mine()].sort()).toEqual([...registered].sort());

  // Every event reaches the stream once the old primary serves as the new one's replica.
  await eventually(async () => !(await db('events').whereNull('published_at').first()), { timeoutMs: 60_000 });

  // The session signed out before the failover stays signed out.
  expect((await call(`${api.url}/v1/users/me`, { headers: auth })).status).toBe(401);
});
