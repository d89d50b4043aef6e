// Faults with real processes: the api's readiness follows its Redis and its PostgreSQL going away
// and coming back (without a restart of the api), a producer and a request fail fast with 503 when
// Redis is down, and a worker that gets SIGTERM finishes the email it is sending before it exits 0.
// Redis and PostgreSQL are this file's own servers (test/helpers/processes.ts), never the shared
// ones; the worker test uses the shared ones, which it does not stop.
import crypto from 'node:crypto';
import http from 'node:http';
import { spawn, type ChildProcess } from 'node:child_process';
import Router from '@koa/router';
import { Type } from '@sinclair/typebox';
import { call, eventually, startTestApp, testEnvironment, type Reply, type TestApp } from '../helpers/app';
import { startPostgres, startRedis, type OwnPostgres, type OwnServer } from '../helpers/processes';
import type { TestSmtp } from '../helpers/smtp';
import { startStack, type TestStack } from '../helpers/stack';
import { ROOT } from '../helpers/env';
import { createApp } from '../../api/app';
import type { AppState } from '../../api/http/state';
import type { Context } from '../../shared/context';
import { enqueueEmail } from '../../shared/queues';
import { UnavailableError } from '../../shared/errors';
import { writeEmail } from '../../shared/email/outbox';

const isProblem = (r: Reply, status: number) => {
  expect(r.status).toBe(status);
  expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(r.body).toMatchObject({
    status,
    type: expect.stringMatching(/^urn:user-service:problem:/),
    title: expect.any(String),
    detail: expect.any(String),
  });
  expect(JSON.stringify(r.body)).not.toMatch(/ECONNREFUSED|enableOfflineQueue|Connection|at .*\.ts:\d+/);
};

/** Readiness as a probe for `eventually`: the reply once it has `status`, else undefined. */
const readyIs = (base: string, status: number) => async () => {
  const r = await call(`${base}/health/ready`);
  return r.status === status ? r : undefined;
};

/**
 * A second app over the same context with routes that use Redis and PostgreSQL the way features
 * do (Koa composes its middleware when the server starts, so routes cannot be added to a running
 * one). Errors reach the real problem middleware.
 */
async function scratchServer(context: Context): Promise<{ url: string; close(): Promise<void> }> {
  const scratch = createApp(context);
  const router = new Router<AppState>();
  const ok = { 200: { description: 'ok', schema: Type.Record(Type.String(), Type.Unknown()) } };
  scratch.registry.add(router, {
    method: 'post',
    path: '/v1/test/enqueue',
    summary: 'enqueue an email job',
    tags: ['test'],
    security: 'none',
    responses: ok,
    async handler(ctx) {
      await enqueueEmail(context.queues, crypto.randomUUID());
      ctx.body = { queued: true };
    },
  });
  scratch.registry.add(router, {
    method: 'get',
    path: '/v1/test/redis',
    summary: 'read a Redis key',
    tags: ['test'],
    security: 'none',
    responses: ok,
    async handler(ctx) {
      ctx.body = { value: await context.redis.get(context.key('fault-probe')) };
    },
  });
  scratch.registry.add(router, {
    method: 'get',
    path: '/v1/test/db',
    summary: 'query PostgreSQL',
    tags: ['test'],
    security: 'none',
    responses: ok,
    async handler(ctx) {
      ctx.body = { users: (await context.db('users').count<{ count: number }[]>({ count: '*' }))[0].count };
    },
  });
  scratch.koa.use(router.routes());
  const server = http.createServer(scratch.koa.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        scratch.close();
      }),
  };
}

describe('Redis goes away', () => {
  let redis: OwnServer;
  let t: TestApp;
  let scratch: Awaited<ReturnType<typeof scratchServer>>;

  beforeAll(async () => {
    redis = await startRedis();
    t = await startTestApp({ REDIS_URL: redis.url });
    scratch = await scratchServer(t.context);
  });
  afterAll(async () => {
    await scratch?.close();
    // A test that failed with Redis stopped: bring it back so the app closes cleanly and at once.
    await redis?.start().catch(() => undefined);
    await t?.close();
    await redis?.close();
  });
  // Whatever a test did, the next one starts with its Redis up and the app's connections ready.
  beforeEach(async () => {
    await redis.start();
    await eventually(readyIs(t.url, 200), { timeoutMs: 10_000 });
  });

  test('readiness answers 503 naming Redis while it is down, and 200 again once it is back, without a restart', async () => {
    const up = await call(`${t.url}/health/ready`);
    expect(up.status).toBe(200);
    expect(up.body).toEqual({ status: 'ok', checks: { database: 'ok', redis: 'ok' } });

    await redis.stop();
    const down = await eventually(readyIs(t.url, 503), { timeoutMs: 5_000 });
    expect(down.body).toEqual({ status: 'unavailable', checks: { redis: 'down', database: 'ok' } });
    expect(down.headers.get('cache-control')).toBe('no-store');

    await redis.start();
    const back = await eventually(readyIs(t.url, 200), { timeoutMs: 10_000 });
    expect(back.body).toEqual({ status: 'ok', checks: { database: 'ok', redis: 'ok' } });
  }, 30_000);

  test('while Redis is down a producer rejects with UnavailableError instead of hanging', async () => {
    // The queue's connection has been used, as in a running api.
    await enqueueEmail(t.context.queues, crypto.randomUUID());
    await redis.stop();
    // The api has noticed (its connections were closed together).
    await eventually(readyIs(t.url, 503), { timeoutMs: 5_000 });

    const attempt = enqueueEmail(t.context.queues, crypto.randomUUID());
    await expect(attempt).rejects.toBeInstanceOf(UnavailableError);
    await expect(attempt).rejects.toMatchObject({ status: 503 });
  }, 30_000);

  test('while Redis is down requests that need it answer 503 problem+json; liveness and /metrics still answer', async () => {
    await redis.stop();
    await eventually(readyIs(t.url, 503), { timeoutMs: 5_000 });

    const enqueue = await call(`${scratch.url}/v1/test/enqueue`, { method: 'POST' });
    isProblem(enqueue, 503);
    expect(enqueue.body.type).toBe('urn:user-service:problem:service_unavailable');
    expect(enqueue.headers.get('retry-after')).toBe('5');

    // A raw ioredis error (not wrapped by the code that got it) becomes a 503 too.
    const read = await call(`${scratch.url}/v1/test/redis`);
    isProblem(read, 503);
    expect(read.headers.get('retry-after')).toBe('5');

    const live = await call(`${t.url}/health/live`);
    expect(live.status).toBe(200);

    // Queue gauges are left out while Redis is down; the rest of the scrape is served.
    const metrics = await call(`${t.url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.text).toMatch(/http_requests_total/);
    expect(metrics.text).not.toMatch(/^bullmq_queue_jobs\{/m);

    await redis.start();
    await eventually(readyIs(t.url, 200), { timeoutMs: 10_000 });
    // Readiness pings the command connection; the queue's own connection may reconnect a moment
    // later (its retry backoff), and until then enqueueing answers 503, as it should.
    const again = await eventually(
      async () => {
        const r = await call(`${scratch.url}/v1/test/enqueue`, { method: 'POST' });
        return r.status === 503 ? undefined : r;
      },
      { timeoutMs: 10_000 },
    );
    expect(again.status).toBe(200);
    const scraped = await call(`${t.url}/metrics`);
    expect(scraped.text).toMatch(/^bullmq_queue_jobs\{queue="email",state="waiting"\} \d+/m);
  }, 30_000);
});

describe('PostgreSQL goes away', () => {
  let postgres: OwnPostgres;
  let t: TestApp;
  let scratch: Awaited<ReturnType<typeof scratchServer>>;

  beforeAll(async () => {
    postgres = await startPostgres();
    const databaseUrl = await postgres.createDatabase('user_service');
    t = await startTestApp({}, { databaseUrl });
    scratch = await scratchServer(t.context);
  }, 90_000);
  afterAll(async () => {
    await scratch?.close();
    await t?.close();
    await postgres?.close();
  }, 60_000);

  test('readiness answers 503 naming the database while it is down, and 200 again once it is back, without a restart', async () => {
    // Ready once its connections are up (the first moments after start may still say 503).
    const up = await eventually(readyIs(t.url, 200), { timeoutMs: 10_000 });
    expect(up.body).toEqual({ status: 'ok', checks: { database: 'ok', redis: 'ok' } });
    expect((await call(`${scratch.url}/v1/test/db`)).status).toBe(200);

    await postgres.stop();
    const down = await eventually(readyIs(t.url, 503), { timeoutMs: 5_000 });
    expect(down.body).toEqual({ status: 'unavailable', checks: { database: 'down', redis: 'ok' } });

    // A request that needs the database gets a 503 problem, not a hang and not a 500.
    const query = await call(`${scratch.url}/v1/test/db`);
    isProblem(query, 503);
    expect((await call(`${t.url}/health/live`)).status).toBe(200);

    await postgres.start();
    const back = await eventually(readyIs(t.url, 200), { timeoutMs: 10_000 });
    expect(back.body).toEqual({ status: 'ok', checks: { database: 'ok', redis: 'ok' } });
    const again = await call(`${scratch.url}/v1/test/db`);
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ users: expect.any(Number) });
  }, 60_000);
});

describe('worker shutdown', () => {
  let stack: TestStack | undefined;
  let smtp: TestSmtp;
  let t: TestApp;
  let worker: ChildProcess | undefined;

  beforeAll(async () => {
    // The worker under test is a process of its own, started by the test.
    stack = await startStack({}, { workers: false });
    ({ app: t, smtp } = stack);
  });
  afterAll(async () => {
    if (worker && worker.exitCode === null && worker.signalCode === null) {
      const gone = new Promise((resolve) => worker!.once('exit', resolve));
      worker.kill('SIGKILL');
      await gone;
    }
    await stack?.close();
  });

  test('SIGTERM lets the email being sent finish, records it as sent, and exits 0', async () => {
    smtp.delayMs = 1500;
    // Same database, Redis and prefixes as this test's context, so both see the same queues.
    const env = {
      ...testEnvironment(t.database, { ...smtp.env(), WORKER_QUEUES: 'email' }),
      DATABASE_URL: t.config.database.url,
      REDIS_URL: t.config.redis.url,
      REDIS_KEY_PREFIX: t.config.redis.keyPrefix,
      BULLMQ_PREFIX: t.config.queues.prefix,
      EVENTS_STREAM_NAME: t.config.events.streamName,
      LOG_LEVEL: 'info',
    };
    const child = spawn(process.execPath, ['--import', 'tsx', 'workers/worker.ts'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    worker = child;
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    // Complete JSON log lines only: the last one may still be arriving.
    const messages = () =>
      output
        .split('\n')
        .slice(0, -1)
        .flatMap((line) => {
          try {
            return [JSON.parse(line) as { msg?: string }];
          } catch {
            return [];
          }
        });

    // Its SIGTERM handler is installed once it says it started.
    await eventually(
      () => {
        if (child.exitCode !== null) throw new Error(`worker exited early (${child.exitCode}):\n${output}`);
        return messages().some((m) => m.msg === 'worker started');
      },
      { timeoutMs: 30_000 },
    );

    const to = `shutdown-${crypto.randomBytes(3).toString('hex')}@example.com`;
    const emailId = await t.context.db.transaction((trx) =>
      writeEmail(trx, t.context.kms, { template: 'password_changed', to, params: { name: 'X' } }),
    );
    await enqueueEmail(t.context.queues, emailId);

    // The job is running and has reached the send (attempts counts it), the mail not yet accepted.
    const job = await eventually(() => t.context.queues.email.getJob(`email-${emailId}`), { timeoutMs: 10_000 });
    await eventually(async () => (await job.getState()) === 'active', { timeoutMs: 10_000 });
    await eventually(async () => ((await t.context.db('email_messages').where({ id: emailId }).first())?.attempts ?? 0) >= 1, {
      timeoutMs: 10_000,
    });
    expect(smtp.messages.filter((m) => m.to.includes(to))).toHaveLength(0);

    child.kill('SIGTERM');
    const result = await exit;
    expect({ ...result, output: result.code === 0 ? '' : output }).toEqual({ code: 0, signal: null, output: '' });

    expect(smtp.messages.filter((m) => m.to.includes(to))).toHaveLength(1);
    const row = await t.context.db('email_messages').where({ id: emailId }).first();
    expect(row).toMatchObject({ status: 'sent', attempts: 1 });
    expect(await job.getState()).toBe('completed');
    const said = messages().map((m) => m.msg);
    expect(said).toContain('shutting down');
    expect(said).toContain('stopped');
  }, 60_000);
});
