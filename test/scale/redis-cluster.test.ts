// The service on a Redis Cluster of its own (3 primaries, 3 replicas), as several processes share
// it: two api processes and two workers, compiled as in production, on one database. What one api
// process does is seen by the other at its next request, and the workers share the jobs.
import crypto from 'node:crypto';
import { Queue } from 'bullmq';
import { call, createTestDatabase, dropTestDatabase, eventually, loadTestEnvironment } from '../helpers/app';
import { startRedisCluster, startServiceProcess, type OwnRedisCluster, type ServiceProcess } from '../helpers/processes';
import { startSmtp, type TestSmtp } from '../helpers/smtp';
import { createUser, type TestUser } from '../helpers/users';
import { parseConfig, type Config } from '../../shared/config';
import { createDb, type Db } from '../../shared/db';
import { createRedis, execAcknowledged, waitForRedis, type Redis } from '../../shared/redis';
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
  env = loadTestEnvironment(database, { ...smtp.env(), ...cluster.env(), RATELIMIT_REFRESH_ATTEMPTS: '1000' });
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

  const connection = createRedis(config, 'worker', 'test-queue');
  const queue = new Queue('email', { connection, prefix: queuePrefix(config.queues.prefix, 'email') });
  try {
    const done = await queue.getCompleted(0, 1000);
    expect(new Set(done.map((job) => job.processedBy)).size).toBe(2);
  } finally {
    await queue.close();
    connection.disconnect();
  }
  await expectEachEventOnceOnTheStream();
});

test('writes acknowledged by a replica, sent with a slot map the cluster has moved on from, are redirected (MOVED), not refused', async () => {
  // A client whose slot map predates the move, as every api process's does after a failover.
  const client = createRedis(config, 'command', 'stale-map');
  try {
    await waitForRedis(client);
    const tag = `{${crypto.randomUUID()}}`;
    const [revoked, live] = [`${config.redis.keyPrefix}moved:${tag}:a`, `${config.redis.keyPrefix}moved:${tag}:b`];
    const slot = Number(await client.cluster('KEYSLOT', revoked));
    expect(await cluster.onNode(cluster.nodes[0], (n) => n.cluster('COUNTKEYSINSLOT', slot))).toBe(0);

    // The slot (empty) goes to another primary: the target first, then the other primaries.
    const ranges = await client.cluster('SLOTS');
    const address = ([host, port]: [string, number, ...unknown[]]) => `${host}:${port}`;
    const owner = ranges.find(([from, to]) => from <= slot && slot <= to)![2];
    const target = ranges.map(([, , primary]) => primary).find((primary) => primary[2] !== owner[2])!;
    const primaries = [...new Set(ranges.map(([, , primary]) => address(primary)))];
    const order = [address(target), ...primaries.filter((node) => node !== address(target))];
    for (const node of order) await cluster.onNode(node, (n) => n.cluster('SETSLOT', slot, 'NODE', target[2]));

    await execAcknowledged(client, { waitReplicas: 1, waitTimeoutMs: 1000 }, revoked, (pipeline) =>
      pipeline.set(revoked, '1', 'EX', 60).del(live),
    );
    expect(await cluster.onNode(address(target), (n) => n.get(revoked))).toBe('1');
  } finally {
    client.disconnect();
  }
});
