// Faults with real processes and servers of this file's own (DESIGN.md, "Fault tests"): Redis
// restarted with its data lost while work is pending. What PostgreSQL holds is the truth: sessions
// survive, the reconcilers re-enqueue every pending email, Kite verification and audit export, the
// outbox relay publishes every committed event into the new stream (those it had published before
// the loss too), and the permission cache is rebuilt from the database. test/foundation/faults.test.ts covers readiness and 503s.
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { call, eventually, processEnvironment, startTestApp, startWorkerProcess, type Reply, type TestApp } from '../helpers/app';
import { link } from '../trading-accounts/flows';
import { recordEvent } from '../../shared/events/outbox';
import { ROOT } from '../helpers/env';
import { enableMfa, login, signedInUser, streamEvents, type SignedIn } from '../helpers/auth';
import { freePort, startPostgres, startRedis, terminate, type OwnPostgres, type OwnServer } from '../helpers/processes';
import { startSmtp, type TestSmtp } from '../helpers/smtp';
import { startStack, type TestStack } from '../helpers/stack';
import { createUser } from '../helpers/users';

jest.setTimeout(90_000);

describe('Redis restarted with its data lost', () => {
  let redis: OwnServer;
  let s: TestStack;

  beforeAll(async () => {
    redis = await startRedis();
    // Rows pending for a second count as having lost their job (60 s in production).
    s = await startStack({ REDIS_URL: redis.url, RECONCILE_INTERVAL_SECONDS: '1', RECONCILE_AFTER_SECONDS: '1' });
  });
  afterAll(async () => {
    await redis?.start().catch(() => undefined);
    await s?.close();
    await redis?.close();
  });

  test('nobody is signed out; every pending email, Kite verification, export and event completes; the permission cache follows the database', async () => {
    const { app, smtp, kite } = s;
    const queues = app.context.queues;
    // Events published before the loss: the stream that holds them goes with it.
    const early = await signedInUser(app.context.db, app.url);
    await eventually(async () => (await app.context.db('events').where({ user_id: early.id }).whereNull('published_at')).length === 0);
    await eventually(async () => (await app.context.db('email_messages').whereNot({ status: 'sent' })).length === 0);
    const sentEarly = smtp.messages.length;
    const publishedEarly = await app.context.db('events').where({ user_id: early.id }).pluck('id');
    expect(publishedEarly.length).toBeGreaterThanOrEqual(1);
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
    const linked = await link(s, trader, kiteApp);
    expect(linked.status).toBe(202);
    const accountId = linked.body.id as string;

    const exported = await call(`${app.url}/v1/audit/export`, { body: { format: 'json' }, headers: trader.auth });
    expect(exported.status).toBe(202);
    const exportId = exported.body.export_id as string;

    const emails = await app.context.db('email_messages').where({ status: 'pending' }).pluck('id');
    expect(emails.length).toBeGreaterThanOrEqual(1);
    expect(smtp.messages).toHaveLength(sentEarly);

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

    // Every committed event is in the new stream, once: those published before the loss too.
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
    expect(published.stream.map((e) => e.id)).toEqual(expect.arrayContaining(publishedEarly));
  });
});

describe('a worker SIGKILLed mid-job', () => {
  const RELAY_BATCH = 100;
  let s: TestStack;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    // The queues run only in the worker processes the test starts (and kills).
    s = await startStack({}, { workers: false });
  });
  afterAll(async () => {
    for (const child of children) await terminate(child, 'SIGKILL');
    s.kite.release();
    await s?.close();
  });

  /** A worker process of some queues on this stack's database, Redis and fakes. */
  async function startWorker(queues = 'email,kite'): Promise<ChildProcess> {
    const child = await startWorkerProcess(s.app, {
      ...s.smtp.env(),
      ...s.kite.env(),
      // Longer than the hold below: the killed worker is still waiting on Kite when it dies.
      KITE_API_TIMEOUT_SECONDS: '20',
      KITE_API_RETRY_BACKOFF_MS: '20',
      WORKER_QUEUES: queues,
      EVENTS_RELAY_BATCH_SIZE: String(RELAY_BATCH),
      // A dead worker's claim lapses soon, so the next one takes its job in seconds.
      JOB_LOCK_MS: '2000',
      // And a row whose job will not run again is seen within seconds.
      RECONCILE_INTERVAL_SECONDS: '1',
      RECONCILE_AFTER_SECONDS: '1',
      KITE_JOB_LOCK_SECONDS: '2',
    });
    children.push(child);
    return child;
  }

  test('email and kite: the job another worker takes over completes once (one email by its Message-ID, one Kite exchange)', async () => {
    const { app, smtp, kite } = s;
    const first = await startWorker();

    // Mid-flight: the mail is being accepted slowly, the token exchange is held at Kite.
    smtp.delayMs = 5_000;
    kite.script('POST /session/token', ['hold']);
    const forgetful = await createUser(app.context.db);
    expect((await call(`${app.url}/v1/auth/password/reset-request`, { body: { email: forgetful.email } })).status).toBe(202);
    const trader = await signedInUser(app.context.db, app.url);
    const kiteApp = kite.addApp();
    const linked = await link(s, trader, kiteApp);
    expect(linked.status).toBe(202);
    const accountId = linked.body.id as string;
    await kite.held('POST /session/token');
    const email = await eventually(
      async () => {
        const rows = await app.context.db('email_messages').where({ template: 'password_reset' }).where('attempts', '>=', 1);
        return rows.length === 1 && rows[0];
      },
      { timeoutMs: 20_000 },
    );
    expect(email.status).toBe('pending');

    await terminate(first, 'SIGKILL');
    smtp.delayMs = 0;
    await startWorker();

    const account = await eventually(
      async () => {
        const r = await call(`${app.url}/v1/trading-accounts/${accountId}`, { headers: trader.auth });
        return ['active', 'invalid', 'error'].includes(r.body.status) && r;
      },
      { timeoutMs: 30_000 },
    );
    expect(account.body.status).toBe('active');
    // Two requests reached Kite: the killed worker's, held and never answered (its request token
    // unspent), and the one that did the exchange.
    expect(kite.count('POST /session/token', kiteApp.apiKey)).toBe(2);

    await eventually(async () => (await app.context.db('email_messages').where({ id: email.id }).first())?.status === 'sent', {
      timeoutMs: 30_000,
    });
    const mails = smtp.messages.filter((m) => m.to.includes(forgetful.email.toLowerCase()));
    expect(mails.length).toBeGreaterThanOrEqual(1);
    // A copy the dead worker's connection had already handed over is the same message.
    expect(new Set(mails.map((m) => m.messageId)).size).toBe(1);
  });

  test('email: a job whose workers die twice (BullMQ then fails it without using its attempts) is still delivered, by the reconciler', async () => {
    const { app, smtp } = s;
    const db = app.context.db;
    const forgetful = await createUser(db);
    const row = () => db('email_messages').whereRaw('lower(to_address) = ?', [forgetful.email.toLowerCase()]).first();
    const attempted = (n: number) => eventually(async () => ((await row())?.attempts ?? 0) >= n, { timeoutMs: 20_000 });

    // Each worker dies while the SMTP server is still taking the message.
    smtp.delayMs = 60_000;
    expect((await call(`${app.url}/v1/auth/password/reset-request`, { body: { email: forgetful.email } })).status).toBe(202);
    const first = await startWorker('email');
    await attempted(1);
    await terminate(first, 'SIGKILL');
    // Its lock lapses; the stalled check hands the job to the next worker, which dies too.
    const second = await startWorker('email');
    await attempted(2);
    await terminate(second, 'SIGKILL');
    // The next stalled check fails the job (stalled more than BullMQ's limit): no attempt is left
    // to it and no final-failure hook ran, so only the row says the email is owed.
    smtp.delayMs = 0;
    await startWorker('email');

    await eventually(async () => (await row())?.status === 'sent', { timeoutMs: 30_000 });
    const mails = smtp.messages.filter((m) => m.to.includes(forgetful.email.toLowerCase()));
    expect(mails.length).toBeGreaterThanOrEqual(1);
    expect(new Set(mails.map((m) => m.messageId)).size).toBe(1);
  });

  test('events: a relay killed between adding entries and recording them leaves nothing twice on the stream', async () => {
    const { app } = s;
    const db = app.context.db;
    // A backlog of several batches, beside the events of the test above that no relay took yet.
    await db.transaction(async (trx) => {
      for (let i = 0; i < 3 * RELAY_BATCH; i += 1) await recordEvent(trx, { type: 'user.updated', data: { fields: ['name'], i } });
    });
    const stream = () => streamEvents(app.context.redis, app.config.events.streamName);
    expect(await stream()).toHaveLength(0);

    // SHARE mode lets the relay claim rows and add them to the stream, and blocks the UPDATE that
    // records them: the worker dies right between the two.
    const blocker = await db.transaction();
    try {
      await blocker.raw('LOCK TABLE events IN SHARE MODE');
      const first = await startWorker('events');
      await eventually(async () => (await stream()).length === RELAY_BATCH, { timeoutMs: 20_000 });
      await terminate(first, 'SIGKILL');
    } finally {
      await blocker.rollback();
    }
    const [{ n: recorded }] = await db('events').whereNotNull('published_at').count<{ n: string }[]>({ n: '*' });
    expect(Number(recorded)).toBe(0);

    await startWorker('events');
    const published = await eventually(
      async () => {
        const [{ n }] = await db('events').whereNull('published_at').count<{ n: string }[]>({ n: '*' });
        return Number(n) === 0 && { rows: await db('events').pluck('id'), entries: await stream() };
      },
      { timeoutMs: 30_000 },
    );
    expect(published.entries.map((e) => e.id).sort()).toEqual(published.rows.map(String).sort());
  });
});

describe('a third party down for a while', () => {
  let s: TestStack;
  let smtpAgain: TestSmtp | undefined;

  beforeAll(async () => {
    // Few attempts, spaced enough that SMTP's outage spans some of them and not all: time scaled
    // down from production, whose schedule (JOB_BACKOFF_MS 2 s doubling, 8 attempts: about four
    // minutes) outlasts a minute's outage the same way.
    s = await startStack({ JOB_ATTEMPTS: '4', JOB_BACKOFF_MS: '300' });
  });
  afterAll(async () => {
    await smtpAgain?.close();
    await s?.close();
  });

  test('SMTP stopped, then started on the same port: the email is retried and delivered once', async () => {
    const { app, smtp } = s;
    await smtp.close();
    const forgetful = await createUser(app.context.db);
    expect((await call(`${app.url}/v1/auth/password/reset-request`, { body: { email: forgetful.email } })).status).toBe(202);
    // Deliveries failed on the closed port, more than once.
    const email = await eventually(
      async () => {
        const row = await app.context.db('email_messages').where({ template: 'password_reset' }).first();
        return row && row.attempts >= 2 && row;
      },
      { timeoutMs: 20_000 },
    );
    expect(email.status).toBe('pending');

    smtpAgain = await startSmtp(smtp.port);
    const mail = await smtpAgain.waitFor((m) => m.to.includes(forgetful.email.toLowerCase()), 30_000);
    expect(mail.subject).not.toBe('');
    const row = await eventually(
      async () => {
        const r = await app.context.db('email_messages').where({ id: email.id }).first();
        return r?.status === 'sent' && r;
      },
      { timeoutMs: 10_000 },
    );
    expect(row.attempts).toBeGreaterThanOrEqual(3);
    expect(smtpAgain.messages.filter((m) => m.to.includes(forgetful.email.toLowerCase()))).toHaveLength(1);
  });

  test('Kite down: the verification ends in error after its retries, and verify succeeds once Kite is back', async () => {
    const { app, kite } = s;
    const trader = await signedInUser(app.context.db, app.url);
    const kiteApp = kite.addApp();
    const linked = await link(s, trader, kiteApp);
    expect(linked.status).toBe(202);
    const accountId = linked.body.id as string;
    const status = (wanted: string[]) =>
      eventually(
        async () => {
          const r = await call(`${app.url}/v1/trading-accounts/${accountId}`, { headers: trader.auth });
          return wanted.includes(r.body.status) && r;
        },
        { timeoutMs: 30_000 },
      );
    expect((await status(['active', 'invalid', 'error'])).body.status).toBe('active');

    kite.always('GET /user/profile', { status: 503 });
    const again = await call(`${app.url}/v1/trading-accounts/${accountId}/verify`, { method: 'POST', body: {}, headers: trader.auth });
    expect(again.status).toBe(202);
    const failed = await status(['active', 'invalid', 'error']);
    expect(failed.body.status).toBe('error');
    expect(kite.count('GET /user/profile', kiteApp.apiKey)).toBeGreaterThanOrEqual(2);
    expect(await app.context.db('trading_accounts').where({ id: accountId }).first()).toMatchObject({ status: 'error' });

    kite.reset();
    const retry = await call(`${app.url}/v1/trading-accounts/${accountId}/verify`, { method: 'POST', body: {}, headers: trader.auth });
    expect(retry.status).toBe(202);
    expect((await status(['active', 'invalid'])).body.status).toBe('active');
    expect(await app.context.db('trading_accounts').where({ id: accountId }).first()).toMatchObject({ status: 'active' });
  });
});

describe('PostgreSQL stopped mid-traffic', () => {
  let postgres: OwnPostgres;
  let t: TestApp;

  beforeAll(async () => {
    postgres = await startPostgres();
    // The refresh loop below is one session's steady traffic, not an abuse to limit.
    t = await startTestApp({ RATELIMIT_REFRESH_ATTEMPTS: '10000' }, { databaseUrl: await postgres.createDatabase('user_service') });
  }, 90_000);
  afterAll(async () => {
    await postgres?.start().catch(() => undefined);
    await t?.close();
    await postgres?.close();
  }, 60_000);

  test('503 problem+json for what needs it, recovery without a restart, and no half-written refresh, grant or link', async () => {
    const db = t.context.db;
    const admin = await signedInUser(db, t.url, { roles: ['admin'] });
    const refresher = await signedInUser(db, t.url);
    const grantees = await Promise.all(Array.from({ length: 40 }, () => signedInUser(db, t.url, { roles: ['viewer'] })));
    const traders = await Promise.all(Array.from({ length: 40 }, () => signedInUser(db, t.url)));
    await eventually(async () => (await call(`${t.url}/health/ready`)).status === 200, { timeoutMs: 10_000 });

    const seen: Reply[] = [];
    const record = (r: Reply) => {
      seen.push(r);
      return r;
    };
    let done = false;
    let refreshToken = refresher.refreshToken;
    const granted: { userId: string; status: number }[] = [];
    const links: { userId: string; status: number }[] = [];

    const refreshes = (async () => {
      while (!done) {
        const r = record(await call(`${t.url}/v1/auth/refresh`, { body: { refresh_token: refreshToken } }));
        if (r.status === 200) refreshToken = r.body.refresh_token;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    const grants = (async () => {
      for (const who of grantees) {
        if (done) break;
        const r = record(
          await call(`${t.url}/v1/authz/permissions`, { body: { user_id: who.id, permission: 'orders:write' }, headers: admin.auth }),
        );
        granted.push({ userId: who.id, status: r.status });
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    const linking = (async () => {
      for (const who of traders) {
        if (done) break;
        const kiteApp = { apiKey: `key${who.id.slice(0, 8)}`, apiSecret: `secret${who.id.slice(0, 12)}` };
        const r = record(
          await call(`${t.url}/v1/trading-accounts/link`, {
            headers: who.auth,
            body: { broker: 'kite', api_key: kiteApp.apiKey, api_secret: kiteApp.apiSecret, request_token: `rt${who.id.slice(0, 10)}` },
          }),
        );
        links.push({ userId: who.id, status: r.status });
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();

    // Let some traffic through, stop PostgreSQL under it, then bring it back.
    await eventually(() => seen.filter((r) => r.status < 300).length >= 6, { timeoutMs: 20_000 });
    await postgres.stop();
    await eventually(() => seen.some((r) => r.status === 503), { timeoutMs: 15_000 });
    await postgres.start();
    const down = seen.length;
    // Recovered without a restart: successes again after the outage.
    await eventually(() => seen.slice(down).filter((r) => r.status < 300).length >= 6, { timeoutMs: 30_000 });
    done = true;
    await Promise.all([refreshes, grants, linking]);

    const statuses = new Set(seen.map((r) => r.status));
    expect([...statuses].sort()).toEqual([...statuses].filter((n) => [200, 201, 202, 503].includes(n)).sort());
    for (const r of seen.filter((x) => x.status === 503)) {
      expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(r.body.type).toBe('urn:user-service:problem:service_unavailable');
    }

    // The refresh token the client holds is the live one: a 503 never rotated it behind its back.
    const last = await call(`${t.url}/v1/auth/refresh`, { body: { refresh_token: refreshToken } });
    expect(last.status).toBe(200);
    const live = await db('sessions').where({ user_id: refresher.id }).whereNull('revoked_at').pluck('id');
    expect(live).toEqual([refresher.sessionId]);

    // A grant exists exactly when it was answered 201, and the check says the same.
    for (const { userId, status } of granted) {
      const rows = await db('user_permissions').where({ user_id: userId });
      expect({ userId, status, rows: rows.length }).toEqual({ userId, status, rows: status === 201 ? 1 : 0 });
      const who = grantees.find((g) => g.id === userId)!;
      const check = await call(`${t.url}/v1/authz/check`, { body: { permission: 'orders:write' }, headers: who.auth });
      expect(check.body.allowed).toBe(status === 201);
    }
    // A link exists exactly when it was answered 202.
    for (const { userId, status } of links) {
      const rows = await db('trading_accounts').where({ user_id: userId });
      expect({ userId, status, rows: rows.length }).toEqual({ userId, status, rows: status === 202 ? 1 : 0 });
    }
  });
});

describe('the api SIGTERMed under load', () => {
  let t: TestApp;
  let api: ChildProcess | undefined;

  beforeAll(async () => {
    // The database and prefixes of this app; the api under test is a process of its own over them.
    t = await startTestApp();
  });
  afterAll(async () => {
    if (api) await terminate(api, 'SIGKILL');
    await t?.close();
  });

  /** A POST on a connection of its own (no keep-alive to race the shutdown): its status, or the socket error's code. */
  const post = (url: string, body: unknown) =>
    new Promise<{ status?: number; error?: string; body?: any }>((resolve) => {
      const req = http.request(url, { method: 'POST', agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode, body: text ? JSON.parse(text) : undefined }));
        res.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
      });
      req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
      req.end(JSON.stringify(body));
    });

  test('requests in flight finish, none answers 5xx, and every session is whole or absent', async () => {
    const port = await freePort();
    const env = processEnvironment(t, { PORT: String(port), LOG_LEVEL: 'info' });
    const child = spawn(process.execPath, ['--import', 'tsx', 'api/server.ts'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    api = child;
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const url = `http://127.0.0.1:${port}`;
    await eventually(
      async () => {
        if (child.exitCode !== null) throw new Error(`api exited early:\n${output}`);
        return (await call(`${url}/health/ready`).catch(() => ({ status: 0 }))).status === 200;
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );

    const users = await Promise.all(Array.from({ length: 40 }, () => createUser(t.context.db)));
    const signedIn = await Promise.all(users.slice(0, 20).map((u) => login(t.url, u)));
    // The load: sign-ins of users without a session, refreshes of those with one.
    const logins = users.slice(20).map((u) => post(`${url}/v1/auth/login`, { email: u.email, password: u.password }));
    const refreshes = signedIn.map((u) => post(`${url}/v1/auth/refresh`, { refresh_token: u.refreshToken }));
    // The api is serving them: the first answer is in, the others are being handled or queued.
    await Promise.race([...logins, ...refreshes]);
    child.kill('SIGTERM');
    const loginResults = await Promise.all(logins);
    const refreshResults = await Promise.all(refreshes);
    expect(await exit).toBe(0);

    const all = [...loginResults, ...refreshResults];
    // Answered: 200. Not answered: refused, or a connection the closing listener had not read a
    // request from (reset); the checks below show none of those was processed.
    for (const r of all) {
      if (r.status !== undefined) expect(r.status).toBe(200);
      else expect(['ECONNREFUSED', 'ECONNRESET']).toContain(r.error);
    }
    expect(all.filter((r) => r.status === 200).length).toBeGreaterThan(0);

    // A login answered 200 has its whole session (its refresh token works elsewhere); one refused has none.
    for (const [i, r] of loginResults.entries()) {
      const user = users[20 + i];
      const sessions = await t.context.db('sessions').where({ user_id: user.id }).whereNull('revoked_at').pluck('id');
      if (r.status === 200) {
        expect(sessions).toEqual([r.body.session_id]);
        expect((await call(`${t.url}/v1/auth/refresh`, { body: { refresh_token: r.body.refresh_token } })).status).toBe(200);
      } else {
        expect(sessions).toEqual([]);
      }
    }
    // A refresh answered 200 rotated the token (the new one works); one refused left the old one working.
    for (const [i, r] of refreshResults.entries()) {
      const token = r.status === 200 ? r.body.refresh_token : signedIn[i].refreshToken;
      expect((await call(`${t.url}/v1/auth/refresh`, { body: { refresh_token: token } })).status).toBe(200);
    }
  });
});
