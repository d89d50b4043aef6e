// The service on a Redis Cluster of its own (3 primaries, 3 replicas), as several processes share
// it: two api processes and two workers, compiled as in production, on one database. What one api
// process does is seen by the other at its next request; the workers share the jobs; and when an
// api, a worker and a Redis primary are killed mid-load and restarted, nobody gets a 500, 503s last
// seconds, no email or event is lost, and a session revoked before the failover stays revoked.
import crypto from 'node:crypto';
import { Queue } from 'bullmq';
import { call, createTestDatabase, dropTestDatabase, eventually, testEnvironment, type Reply } from '../helpers/app';
import { startRedisCluster, startServiceProcess, type OwnRedisCluster, type ServiceProcess } from '../helpers/processes';
import { startSmtp, type TestSmtp } from '../helpers/smtp';
import { createUser, type TestUser } from '../helpers/users';
import { parseConfig, type Config } from '../../shared/config';
import { createDb, type Db } from '../../shared/db';
import { createRedis, type Redis } from '../../shared/redis';
import { queuePrefix } from '../../shared/queues';

jest.setTimeout(180_000);

const PASSWORD = 'Correct horse battery 9!';

let cluster: OwnRedisCluster;
let smtp: TestSmtp;
let database: string;
let env: Record<string, string>;
let config: Config;
let db: Db;
let redis: Redis;
let apiA: ServiceProcess;
let apiB: ServiceProcess;
let workers: ServiceProcess[] = [];

beforeAll(async () => {
  [cluster, smtp, database] = await Promise.all([startRedisCluster(), startSmtp(), createTestDatabase()]);
  env = testEnvironment(database, {
    ...smtp.env(),
    REDIS_URL: `redis://${cluster.nodes[0]}/0`,
    REDIS_CLUSTER_NODES: cluster.nodes.join(','),
    // Revocations and publications wait for a replica: a failover must not lose them.
    REDIS_WAIT_REPLICAS: '1',
    REDIS_WAIT_TIMEOUT_MS: '1000',
    // Every request comes from 127.0.0.1: per-IP caps high enough for the load.
    RATELIMIT_REGISTER_ATTEMPTS: '100000',
    RATELIMIT_LOGIN_IP_ATTEMPTS: '100000',
    RATELIMIT_EMAIL_IP_ATTEMPTS: '100000',
    RATELIMIT_REFRESH_ATTEMPTS: '1000',
    JOB_ATTEMPTS: '20',
    LOG_LEVEL: 'warn',
  });
  config = parseConfig(env);
  db = createDb(config);
  redis = createRedis(config, 'command', 'test');
  [apiA, apiB, ...workers] = await Promise.all([
    startServiceProcess('api', env),
    startServiceProcess('api', env),
    startServiceProcess('worker', env),
    startServiceProcess('worker', env),
  ]);
}, 120_000);

afterAll(async () => {
  for (const p of [apiA, apiB, ...workers]) p?.child.kill('SIGKILL');
  redis?.disconnect();
  await db?.destroy();
  await Promise.all([cluster?.close(), smtp?.close()]);
  if (database) await dropTestDatabase(database);
});

const loginOn = async (api: ServiceProcess, user: TestUser) => {
  const r = await call(`${api.url}/v1/auth/login`, { body: { email: user.email, password: user.password } });
  expect(r.status).toBe(200);
  return { Authorization: `Bearer ${r.body.access_token as string}` };
};
const meStatus = async (api: ServiceProcess, auth: Record<string, string>) =>
  (await call(`${api.url}/v1/users/me`, { headers: auth })).status;

/** Every entry of the event stream (XRANGE reaches the stream's node on a cluster). */
async function streamIds(): Promise<string[]> {
  const entries = await redis.xrange(config.events.streamName, '-', '+');
  return entries.map(([, fields]) => fields[fields.indexOf('id') + 1]);
}

/** Once the outbox is empty: event rows, stream entries and distinct ids are one number. */
async function expectEachEventOnceOnTheStream(): Promise<void> {
  await eventually(async () => !(await db('events').whereNull('published_at').first()), { timeoutMs: 60_000 });
  const [{ n }] = await db('events').count({ n: '*' });
  const ids = await streamIds();
  expect(new Set(ids).size).toBe(ids.length);
  expect(ids.length).toBe(Number(n));
}

test('across api processes, within one request: a revocation, a permission change and the login limit', async () => {
  const user = await createUser(db, { password: PASSWORD });
  const onA = await loginOn(apiA, user);
  expect(await meStatus(apiB, onA)).toBe(200);
  expect((await call(`${apiA.url}/v1/auth/logout`, { body: {}, headers: onA })).status).toBe(204);
  expect(await meStatus(apiB, onA)).toBe(401);

  const admin = await loginOn(apiA, await createUser(db, { roles: ['admin'], password: PASSWORD }));
  const trader = await createUser(db, { password: PASSWORD });
  const check = async () =>
    (await call(`${apiB.url}/v1/authz/check`, { body: { permission: 'audit:read_any', user_id: trader.id }, headers: admin })).body
      .allowed as boolean;
  expect(await check()).toBe(false);
  const grant = await call(`${apiA.url}/v1/authz/permissions`, {
    body: { user_id: trader.id, permission: 'audit:read_any' },
    headers: admin,
  });
  expect(grant.status).toBe(201);
  expect(await check()).toBe(true);
  expect((await call(`${apiA.url}/v1/authz/permissions/${grant.body.id as string}`, { method: 'DELETE', headers: admin })).status).toBe(
    204,
  );
  expect(await check()).toBe(false);

  // Five wrong passwords for one address, alternating between the processes: the sixth is refused.
  const target = await createUser(db, { password: PASSWORD });
  for (let i = 0; i < 5; i += 1) {
    const api = i % 2 ? apiB : apiA;
    expect((await call(`${api.url}/v1/auth/login`, { body: { email: target.email, password: 'Wrong horse battery 9!' } })).status).toBe(
      401,
    );
  }
  expect((await call(`${apiB.url}/v1/auth/login`, { body: { email: target.email, password: PASSWORD } })).status).toBe(429);
});

test('shared work: 300 registrations, 300 emails to 300 addresses, both workers busy, each event once on the stream', async () => {
  const run = crypto.randomBytes(3).toString('hex');
  const addresses = Array.from({ length: 300 }, (_, i) => `shared-${run}-${i}@example.com`);
  for (let i = 0; i < addresses.length; i += 20) {
    const replies = await Promise.all(
      addresses
        .slice(i, i + 20)
        .map((email, j) => call(`${(j % 2 ? apiB : apiA).url}/v1/auth/register`, { body: { email, password: PASSWORD, name: 'Shared' } })),
    );
    expect(replies.map((r) => r.status).filter((s) => s !== 201)).toEqual([]);
  }
  const mine = () => smtp.messages.filter((m) => m.to.some((to) => to.startsWith(`shared-${run}-`)));
  await eventually(() => mine().length >= 300, { timeoutMs: 90_000 });
  expect(new Set(mine().flatMap((m) => m.to)).size).toBe(300);
  expect(mine()).toHaveLength(300);

  const queue = new Queue('email', {
    connection: createRedis(config, 'worker', 'test-queue'),
    prefix: queuePrefix(config.queues.prefix, 'email'),
  });
  try {
    const done = await queue.getCompleted(0, 1000);
    expect(new Set(done.map((job) => job.processedBy)).size).toBe(2);
  } finally {
    await queue.close();
  }
  await expectEachEventOnceOnTheStream();
});

test('chaos: an api, a worker and a Redis primary killed mid-load, then restarted: no 500, 503s for seconds, nothing lost', async () => {
  const run = crypto.randomBytes(3).toString('hex');
  const people = await Promise.all(Array.from({ length: 6 }, () => createUser(db, { password: PASSWORD })));
  // Revoked before the failover: must stay revoked after it.
  const revoked = await Promise.all(people.slice(0, 3).map((p) => loginOn(apiA, p)));
  for (const auth of revoked) expect((await call(`${apiA.url}/v1/auth/logout`, { body: {}, headers: auth })).status).toBe(204);
  const live = await Promise.all(people.slice(3).map((p) => loginOn(apiB, p)));

  const apis = { a: apiA as ServiceProcess | null, b: apiB };
  const replies: { at: number; status: number; what: string }[] = [];
  const registered: string[] = [];
  const started = Date.now();
  const LOAD_MS = 25_000;
  // A client tries A first while it is up and retries on B when A cannot be reached.
  async function send(path: string, init: Parameters<typeof call>[1]): Promise<Reply> {
    if (apis.a) {
      try {
        return await call(`${apis.a.url}${path}`, init);
      } catch {
        // A is gone: the load balancer's retry on B.
      }
    }
    return call(`${apis.b.url}${path}`, init);
  }
  async function client(n: number): Promise<void> {
    for (let i = 0; Date.now() - started < LOAD_MS; i += 1) {
      const kind = (n + i) % 3;
      let reply: Reply;
      if (kind === 0) {
        const email = `chaos-${run}-${n}-${i}@example.com`;
        reply = await send('/v1/auth/register', { body: { email, password: PASSWORD, name: 'Chaos' } });
        if (reply.status === 201) registered.push(email);
      } else if (kind === 1) {
        const person = people[3 + (i % 3)];
        reply = await send('/v1/auth/login', { body: { email: person.email, password: PASSWORD } });
      } else {
        reply = await send('/v1/users/me', { headers: live[i % live.length] });
      }
      replies.push({ at: Date.now() - started, status: reply.status, what: ['register', 'login', 'me'][kind] });
    }
  }

  const primaryPort = Number(cluster.nodes[0].split(':')[1]);
  const chaos = (async () => {
    await new Promise((r) => setTimeout(r, 4000));
    apiA.child.kill('SIGKILL');
    apis.a = null;
    await new Promise((r) => setTimeout(r, 2000));
    workers[0].child.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 2000));
    await cluster.servers[0].stop(); // SIGTERM then wait: the node is gone; its replica takes over
    expect(cluster.servers[0].port).toBe(primaryPort);
    await new Promise((r) => setTimeout(r, 6000));
    await cluster.servers[0].start();
    workers[0] = await startServiceProcess('worker', env);
    apiA = await startServiceProcess('api', env);
    apis.a = apiA;
  })();
  await Promise.all([chaos, ...Array.from({ length: 6 }, (_, n) => client(n))]);
  await cluster.waitUntilOk();

  expect(replies.filter((r) => r.status >= 500 && r.status !== 503)).toEqual([]);
  expect(replies.filter((r) => ![200, 201, 503].includes(r.status))).toEqual([]);
  // 503s come in windows (gaps of more than a second split them), each shorter than 10 s.
  const unavailable = replies.filter((r) => r.status === 503).map((r) => r.at);
  const windows: [number, number][] = [];
  for (const at of unavailable.sort((x, y) => x - y)) {
    const last = windows.at(-1);
    if (last && at - last[1] <= 1000) last[1] = at;
    else windows.push([at, at]);
  }
  for (const [from, to] of windows) expect(to - from).toBeLessThan(10_000);
  expect(replies.filter((r) => r.status !== 503).length).toBeGreaterThan(replies.length / 2);

  for (const api of [apiA, apiB]) for (const auth of revoked) expect(await meStatus(api, auth)).toBe(401);

  // Every accepted registration's email arrives; a repeat (a job in flight at the kill) has the
  // same Message-ID as the first.
  const mine = () => smtp.messages.filter((m) => m.to.some((to) => to.startsWith(`chaos-${run}-`)));
  await eventually(() => new Set(mine().flatMap((m) => m.to)).size >= registered.length, { timeoutMs: 90_000 });
  expect(new Set(mine().flatMap((m) => m.to))).toEqual(new Set(registered));
  const byRecipient = new Map<string, Set<string>>();
  for (const m of mine()) byRecipient.set(m.to[0], (byRecipient.get(m.to[0]) ?? new Set()).add(m.messageId));
  for (const ids of byRecipient.values()) expect(ids.size).toBe(1);
  expect(mine().length - registered.length).toBeLessThanOrEqual(10);

  await expectEachEventOnceOnTheStream();
});
