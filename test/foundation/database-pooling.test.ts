// PostgreSQL as it runs at scale: behind PgBouncer in transaction mode (no startup parameter it
// refuses, the statement timeout still cancelling a slow query), and with pools sized by the
// documented budget so that several processes never exhaust max_connections (53300).
// Each PostgreSQL and PgBouncer here is this file's own (test/helpers/processes.ts).
import crypto from 'node:crypto';
import { call, eventually, startTestApp, type TestApp } from '../helpers/app';
import { login, type SignedIn } from '../helpers/auth';
import { startPgBouncer, startPostgres, type OwnPostgres, type OwnServer } from '../helpers/processes';
import { createUser } from '../helpers/users';
import { checkDatabaseSettings } from '../../shared/db';

const PASSWORD = 'Correct horse battery 9!';

describe('through PgBouncer in transaction mode', () => {
  let pg: OwnPostgres;
  let bouncer: OwnServer;
  let t: TestApp;

  beforeAll(async () => {
    pg = await startPostgres();
    bouncer = await startPgBouncer(pg);
    // Migrated through PgBouncer too, as a deployment that only reaches the database through it.
    const viaBouncer = new URL(bouncer.url);
    viaBouncer.pathname = '/user_service';
    await pg.createDatabase('user_service', { DATABASE_STATEMENT_TIMEOUT_SECONDS: '1' });
    t = await startTestApp({ DATABASE_STATEMENT_TIMEOUT_SECONDS: '1' }, { databaseUrl: viaBouncer.toString() });
    await t.startWorkers();
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    await bouncer?.close();
    await pg?.close();
  });

  test('every flow works: registration with its email and events, sign-in, refresh, profile, sessions, sign-out', async () => {
    const email = `bouncer-${crypto.randomBytes(3).toString('hex')}@example.com`;
    const registered = await call(`${t.url}/v1/auth/register`, { body: { email, password: PASSWORD, name: 'Bouncer' } });
    expect(registered.status).toBe(201);
    const userId = registered.body.user_id as string;
    // The email worker and the event relay (FOR UPDATE SKIP LOCKED in a transaction) ran too.
    await eventually(async () => (await t.context.db('email_messages').where({ user_id: userId }).first())?.status === 'sent');
    await eventually(async () => !(await t.context.db('events').where({ user_id: userId }).whereNull('published_at').first()));

    const user: SignedIn = await login(t.url, await createUser(t.context.db));
    const refreshed = await call(`${t.url}/v1/auth/refresh`, { body: { refresh_token: user.refreshToken } });
    expect(refreshed.status).toBe(200);
    const auth = { Authorization: `Bearer ${refreshed.body.access_token}` };
    expect((await call(`${t.url}/v1/users/me`, { method: 'PATCH', body: { name: 'Renamed' }, headers: auth })).body.name).toBe('Renamed');
    expect((await call(`${t.url}/v1/auth/sessions`, { headers: auth })).body.sessions).toHaveLength(1);
    expect((await call(`${t.url}/v1/auth/logout`, { body: {}, headers: auth })).status).toBe(204);
    expect((await call(`${t.url}/v1/users/me`, { headers: auth })).status).toBe(401);
  });

  test("the statement timeout holds without a startup parameter: `migrate` made it the role's default", async () => {
    const { rows } = await t.context.db.raw<{ rows: { statement_timeout: string }[] }>('SHOW statement_timeout');
    expect(rows[0].statement_timeout).toBe('1s');
    await expect(t.context.db.raw('SELECT pg_sleep(3)')).rejects.toMatchObject({ code: '57014' });
    // And the start-up check finds nothing to say about it.
    await checkDatabaseSettings(t.context.db, t.config, t.context.logger);
    expect(t.logs.text).not.toContain('statement_timeout differs');
  });
});

describe('the connection budget', () => {
  let pg: OwnPostgres;
  let url: string;
  const copies: TestApp[] = [];

  beforeAll(async () => {
    // max_connections 40, 3 of them reserved for superusers: 37 for clients, 5 left to others.
    pg = await startPostgres({ max_connections: '40' });
    url = await pg.createDatabase();
  }, 120_000);
  afterAll(async () => {
    await Promise.all(copies.map((c) => c.close()));
    await pg?.close();
  });

  test('a budget PostgreSQL cannot honour is named at start-up', async () => {
    const t = await startTestApp({ DATABASE_PROCESSES: '4', DATABASE_POOL_SIZE: '20', DATABASE_MAX_OVERFLOW: '10' }, { databaseUrl: url });
    try {
      await checkDatabaseSettings(t.context.db, t.config, t.context.logger);
      expect(t.logs.entries().find((e) => String(e.msg).startsWith('the connection budget exceeds'))).toMatchObject({
        processes: 4,
        poolMax: 30,
        budget: 120,
        available: 32,
      });
    } finally {
      await t.close();
    }
  });

  test('four api copies within the budget, under load: no "too many clients", every request answered', async () => {
    const budget = { DATABASE_PROCESSES: '4', DATABASE_POOL_SIZE: '8', DATABASE_MAX_OVERFLOW: '0' };
    const first = await startTestApp(budget, { databaseUrl: url });
    copies.push(first);
    const shared = {
      REDIS_KEY_PREFIX: first.config.redis.keyPrefix,
      BULLMQ_PREFIX: first.config.queues.prefix,
      EVENTS_STREAM_NAME: first.config.events.streamName,
    };
    for (let i = 0; i < 3; i += 1) copies.push(await startTestApp({ ...budget, ...shared }, { databaseUrl: url }));
    const api = copies.slice(-4);
    await checkDatabaseSettings(first.context.db, first.config, first.context.logger);
    expect(first.logs.text).not.toContain('the connection budget exceeds');

    const users = await Promise.all(Array.from({ length: 8 }, async () => login(first.url, await createUser(first.context.db))));
    // Reads and writes that each take a connection: 100 requests at once on each copy.
    const replies = await Promise.all(
      Array.from({ length: 400 }, (_, i) => {
        const copy = api[i % 4];
        const user = users[i % users.length];
        return i % 2
          ? call(`${copy.url}/v1/users/me`, { headers: user.auth })
          : call(`${copy.url}/v1/users/me`, { method: 'PATCH', body: { name: `Load ${i}` }, headers: user.auth });
      }),
    );
    expect(replies.map((r) => r.status).filter((status) => status !== 200)).toEqual([]);
    const { rows } = await first.context.db.raw<{ rows: { n: number }[] }>(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'user_service'",
    );
    expect(rows[0].n).toBeLessThanOrEqual(32);
  });
});
