// Faults with real processes and servers of this file's own (DESIGN.md, "Fault tests"): Redis
// restarted with its data lost while work is pending. What PostgreSQL holds is the truth: sessions
// survive, the reconcilers re-enqueue every pending email, Kite verification and audit export, the
// outbox relay publishes every committed event into the new stream, and the permission cache is
// rebuilt from the database. test/foundation/faults.test.ts covers readiness and 503s.
import { call, eventually, type Reply } from '../helpers/app';
import { enableMfa, signedInUser, streamEvents, type SignedIn } from '../helpers/auth';
import { startRedis, type OwnServer } from '../helpers/processes';
import { startStack, type TestStack } from '../helpers/stack';
import { createUser } from '../helpers/users';

jest.setTimeout(90_000);

/** Makes rows look older than the reconcilers' "probably still being enqueued" age (60 s). */
async function age(s: TestStack): Promise<void> {
  const db = s.app.context.db;
  const past = db.raw(`now() - interval '5 minutes'`);
  await db('email_messages').where({ status: 'pending' }).update({ created_at: past });
  await db('address_requests').where({ status: 'pending' }).update({ created_at: past });
  await db('audit_exports').where({ status: 'pending' }).update({ created_at: past });
  await db('trading_accounts').whereNull('unlinked_at').update({ updated_at: past });
}

describe('Redis restarted with its data lost', () => {
  let redis: OwnServer;
  let s: TestStack;

  beforeAll(async () => {
    redis = await startRedis();
    s = await startStack({ REDIS_URL: redis.url, RECONCILE_INTERVAL_SECONDS: '1' });
  });
  afterAll(async () => {
    await redis?.start().catch(() => undefined);
    await s?.close();
    await redis?.close();
  });

  test('nobody is signed out; every pending email, Kite verification, export and event completes; the permission cache follows the database', async () => {
    const { app, smtp, kite } = s;
    const queues = app.context.queues;
    // Held work: paused queues keep their jobs waiting (the pause itself lives in Redis, and goes
    // with it).
    for (const name of ['email', 'kite', 'audit-export', 'events'] as const) await queues[name].pause();

    const admin = await signedInUser(app.context.db, app.url, { roles: ['admin'] });
    const viewer = await signedInUser(app.context.db, app.url, { roles: ['viewer'] });
    const grant = await call(`${app.url}/v1/authz/permissions`, {
      body: { user_id: viewer.id, permission: 'orders:write' },
      headers: admin.auth,
    });
    expect(grant.status).toBe(201);
    const check = (who: SignedIn, permission: string) => call(`${app.url}/v1/authz/check`, { body: { permission }, headers: who.auth });
    // Cached now.
    expect((await check(viewer, 'orders:write')).body.allowed).toBe(true);
    expect((await check(viewer, 'alerts:write')).body.allowed).toBe(false);

    const mfaUser = await signedInUser(app.context.db, app.url);
    const authenticator = await enableMfa(app.url, mfaUser);
    const challenge = await call(`${app.url}/v1/auth/login`, { body: { email: mfaUser.email, password: mfaUser.password } });
    expect(challenge.body.mfa_token).toEqual(expect.any(String));

    const forgetful = await createUser(app.context.db);
    expect((await call(`${app.url}/v1/auth/password/reset-request`, { body: { email: forgetful.email } })).status).toBe(202);

    const trader = await signedInUser(app.context.db, app.url);
    const kiteApp = kite.addApp();
    const linked = await call(`${app.url}/v1/trading-accounts/link`, {
      headers: trader.auth,
      body: { broker: 'kite', api_key: kiteApp.apiKey, api_secret: kiteApp.apiSecret, request_token: kite.requestToken(kiteApp.apiKey) },
    });
    expect(linked.status).toBe(202);
    const accountId = linked.body.id as string;

    const exported = await call(`${app.url}/v1/audit/export`, { body: { format: 'json' }, headers: trader.auth });
    expect(exported.status).toBe(202);
    const exportId = exported.body.export_id as string;

    const emails = await app.context.db('email_messages').where({ status: 'pending' }).pluck('id');
    expect(emails.length).toBeGreaterThanOrEqual(1);
    expect(smtp.messages).toHaveLength(0);
    await age(s);

    // The loss: a fresh, empty server on the same port.
    const marker = app.context.key('before-the-loss');
    await app.context.redis.set(marker, '1');
    await redis.stop();
    await redis.start();
    await eventually(async () => (await app.context.redis.exists(marker).catch(() => 1)) === 0, { timeoutMs: 15_000 });

    // Nobody is signed out: access tokens and refresh tokens still work.
    for (const who of [admin, viewer, mfaUser, trader]) {
      const me = await eventually(
        async () => {
          const r = await call(`${app.url}/v1/users/me`, { headers: who.auth });
          return r.status === 503 ? undefined : r;
        },
        { timeoutMs: 15_000 },
      );
      expect(me.status).toBe(200);
      const refreshed = await call(`${app.url}/v1/auth/refresh`, { body: { refresh_token: who.refreshToken } });
      expect(refreshed.status).toBe(200);
      expect(refreshed.body.access_token).toEqual(expect.any(String));
    }

    // The MFA challenge lived in Redis only: it is refused cleanly and a new sign-in works.
    const lost = await call(`${app.url}/v1/auth/mfa/verify`, {
      body: { mfa_token: challenge.body.mfa_token, code: await authenticator.code() },
    });
    expect(lost.status).toBe(401);
    expect(lost.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const again = await call(`${app.url}/v1/auth/login`, { body: { email: mfaUser.email, password: mfaUser.password } });
    const verified = await call(`${app.url}/v1/auth/mfa/verify`, {
      body: { mfa_token: again.body.mfa_token, code: await authenticator.code() },
    });
    expect(verified.status).toBe(200);

    // The permission cache is rebuilt from the database.
    expect((await check(viewer, 'orders:write')).body.allowed).toBe(true);
    expect((await check(viewer, 'alerts:write')).body.allowed).toBe(false);
    expect((await check(admin, 'orders:write')).body.allowed).toBe(true);

    // Every pending email is sent, once.
    await eventually(
      async () => (await app.context.db('email_messages').whereIn('id', emails).where({ status: 'sent' })).length === emails.length,
      {
        timeoutMs: 30_000,
      },
    );
    // The reset request (an address request, turned into its email by a job) too.
    await smtp.waitFor((m) => m.to.includes(forgetful.email.toLowerCase()), 30_000);
    // Emails written after the loss (the reset email, sign-in notices) go out too.
    await eventually(async () => (await app.context.db('email_messages').whereNot({ status: 'sent' })).length === 0, { timeoutMs: 30_000 });
    const [{ n: sent }] = await app.context.db('email_messages').count<{ n: string }[]>({ n: '*' });
    expect(new Set(smtp.messages.map((m) => m.messageId)).size).toBe(smtp.messages.length);
    expect(smtp.messages).toHaveLength(Number(sent));

    // The Kite verification completes.
    const account = await eventually(
      async () => {
        const r = await call(`${app.url}/v1/trading-accounts/${accountId}`, { headers: trader.auth });
        return r.body.status === 'active' && r;
      },
      { timeoutMs: 30_000 },
    );
    expect(account.body.status).toBe('active');
    expect(kite.count('POST /session/token', kiteApp.apiKey)).toBe(1);

    // The export completes and can be read.
    const file: Reply = await eventually(
      async () => {
        const r = await call(`${app.url}/v1/audit/export/${exportId}`, { headers: trader.auth });
        return r.status === 200 && r;
      },
      { timeoutMs: 30_000 },
    );
    expect(Array.isArray(JSON.parse(file.text))).toBe(true);
    expect(await app.context.db('audit_exports').where({ id: exportId }).first()).toMatchObject({ status: 'ready' });

    // Every committed event is in the new stream, once.
    const published = await eventually(
      async () => {
        const rows = await app.context.db('events').pluck('id');
        const stream = await streamEvents(app.context.redis, app.config.events.streamName);
        const unpublished = await app.context.db('events').whereNull('published_at').count<{ n: string }[]>({ n: '*' });
        return Number(unpublished[0].n) === 0 && stream.length >= rows.length && { rows, stream };
      },
      { timeoutMs: 30_000 },
    );
    expect(published.stream.map((e) => e.id).sort()).toEqual(published.rows.map(String).sort());
  });
});
