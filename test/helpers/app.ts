// Starts the real app on a free port against its own database (cloned from the migrated template)
// and its own Redis key, BullMQ and stream prefixes, so test files run in parallel without seeing
// each other. Logs are captured so tests can check what reached them.
import crypto from 'node:crypto';
import http from 'node:http';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { Writable } from 'node:stream';
import pg from 'pg';
import type { Worker } from 'bullmq';
import { parseConfig, type Config } from '../../shared/config';
import { createLogger } from '../../shared/logger';
import { createContext, type Context } from '../../shared/context';
import { createApp, type App } from '../../api/app';
import { startWorkers, type RunningWorkers } from '../../workers/worker';
import { RESPONSE_MISMATCH } from '../../api/http/responses';
import { databaseUrl, KEYS_DIR, MAIL_DIR, PG_URL, REDIS_CLUSTER_NODES, REDIS_URL, ROOT, TEMPLATE_DB } from './env';
import { scanKeys, unlinkKeys } from '../../shared/redis';

export class LogCapture extends Writable {
  readonly lines: string[] = [];
  _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    done();
  }
  get text(): string {
    return this.lines.join('\n');
  }
  entries(): Record<string, unknown>[] {
    return this.lines.map((l) => JSON.parse(l));
  }
}

/**
 * Every answer of a test app is checked against its route's declared responses (VALIDATE_RESPONSES
 * is on in development); a mismatch is logged. Apps started and not yet closed, and how far their
 * logs have been searched for mismatches (test/setup-after-env.ts fails the test that caused one).
 */
const liveApps = new Map<TestApp, number>();

/** The mismatches logged by live apps (or by `only`) since the last call. */
function takeResponseMismatches(only?: TestApp): Record<string, unknown>[] {
  const found: Record<string, unknown>[] = [];
  for (const [app, seen] of liveApps) {
    if (only && app !== only) continue;
    const lines = app.logs.lines;
    for (const line of lines.slice(seen)) if (line.includes(RESPONSE_MISMATCH)) found.push(JSON.parse(line) as Record<string, unknown>);
    liveApps.set(app, lines.length);
  }
  return found;
}

/** Throws when a live app answered a request in a way its route does not declare. */
export function failOnResponseMismatches(only?: TestApp): void {
  const found = takeResponseMismatches(only);
  if (!found.length) return;
  const lines = found.map((m) => JSON.stringify({ method: m.method, route: m.route, status: m.status, problems: m.problems }));
  throw new Error(`answers that do not match their declared responses:\n${lines.join('\n')}`);
}

export async function createTestDatabase(): Promise<string> {
  const name = `us_test_${process.pid}_${crypto.randomBytes(4).toString('hex')}`;
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name} TEMPLATE ${TEMPLATE_DB}`);
    // What `migrate` set on the template (shared/db.ts, setStatementTimeout): a copy does not
    // inherit settings kept per database.
    await client.query(`ALTER ROLE CURRENT_USER IN DATABASE ${name} SET statement_timeout = '15s'`);
  } finally {
    await client.end();
  }
  return name;
}

export async function dropTestDatabase(name: string): Promise<void> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  } finally {
    await client.end();
  }
}

/** Environment of a test process: its own database and prefixes, low bcrypt cost, shared keys. */
export function testEnvironment(database: string, overrides: Record<string, string> = {}): Record<string, string> {
  const tag = crypto.randomBytes(4).toString('hex');
  return {
    ENVIRONMENT: 'development',
    DATABASE_URL: databaseUrl(database),
    DATABASE_POOL_SIZE: '5',
    REDIS_URL,
    // A test giving its own Redis (a fault test's server) means that one, not the run's cluster.
    REDIS_CLUSTER_NODES: overrides.REDIS_URL ? '' : REDIS_CLUSTER_NODES,
    REDIS_KEY_PREFIX: `t${tag}:`,
    BULLMQ_PREFIX: `tbull${tag}`,
    EVENTS_STREAM_NAME: `t${tag}:events`,
    EVENTS_RELAY_INTERVAL_MS: '100',
    JWT_KEYS_DIR: path.join(KEYS_DIR, 'jwt'),
    LOCAL_KMS_KEY_PATH: path.join(KEYS_DIR, 'master.key'),
    EMAIL_DEV_DIR: path.join(MAIL_DIR, tag),
    PASSWORD_BCRYPT_COST: '4',
    LOG_LEVEL: 'debug',
    JOB_BACKOFF_MS: '50',
    ...overrides,
  };
}

/**
 * Environment of the service processes of a scale test (several apis and workers under load on a
 * Redis of the test's own): revocations and publications wait for a replica, since a failover must
 * not lose them; every request comes from 127.0.0.1, so the per-IP caps are out of the way; jobs
 * have attempts enough to outlast a failover.
 */
export function loadTestEnvironment(database: string, overrides: Record<string, string> = {}): Record<string, string> {
  return testEnvironment(database, {
    REDIS_WAIT_REPLICAS: '1',
    REDIS_WAIT_TIMEOUT_MS: '1000',
    RATELIMIT_REGISTER_ATTEMPTS: '100000',
    RATELIMIT_LOGIN_IP_ATTEMPTS: '100000',
    RATELIMIT_EMAIL_IP_ATTEMPTS: '100000',
    JOB_ATTEMPTS: '20',
    LOG_LEVEL: 'warn',
    ...overrides,
  });
}

/** Leaves the shared Redis as it was: every key under this file's prefixes goes. */
async function deleteKeys(context: Context, prefixes: string[]): Promise<void> {
  try {
    for (const prefix of prefixes) await unlinkKeys(context.redis, await scanKeys(context.redis, `${prefix}*`));
  } catch {
    // A test that stopped its Redis has nothing to clean.
  }
}

export interface TestApp {
  config: Config;
  context: Context;
  app: App;
  url: string;
  /** The metrics listener's URL, when METRICS_PORT asks for one. */
  metricsUrl?: string;
  logs: LogCapture;
  database: string;
  workers: Worker[];
  /** Starts the queue workers in this process (most tests); `npm start` runs them in another. */
  startWorkers(): Promise<void>;
  close(): Promise<void>;
}

/**
 * `databaseUrl`: use this existing, migrated database (a fault test's own PostgreSQL) instead of a
 * clone of the template; it is left in place at close.
 */
export async function startTestApp(overrides: Record<string, string> = {}, options: { databaseUrl?: string } = {}): Promise<TestApp> {
  const { databaseUrl: existing } = options;
  const database = existing ? decodeURIComponent(new URL(existing).pathname.slice(1)) : await createTestDatabase();
  const config = parseConfig(testEnvironment(database, existing ? { ...overrides, DATABASE_URL: existing } : overrides));
  const logs = new LogCapture();
  const logger = createLogger(config, logs);
  const context = createContext(config, logger);
  await context.ready();
  const app = createApp(context);
  const server = http.createServer(app.koa.callback());
  // The keep-alive timeouts of api/server.ts, not Node's 5 s: tests that run a CLI with spawnSync
  // block this process for seconds, after which a 5 s timer would close the client's idle socket
  // just as the next request is written on it (ECONNRESET).
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const metricsServer = app.metricsKoa && http.createServer(app.metricsKoa.callback());
  if (metricsServer) await new Promise<void>((resolve) => metricsServer.listen(0, '127.0.0.1', resolve));
  const workers: Worker[] = [];
  const running: RunningWorkers[] = [];
  const testApp: TestApp = {
    config,
    context,
    app,
    url: `http://127.0.0.1:${port}`,
    metricsUrl: metricsServer ? `http://127.0.0.1:${(metricsServer.address() as { port: number }).port}` : undefined,
    logs,
    database,
    workers,
    async startWorkers() {
      const started = await startWorkers(context);
      running.push(started);
      workers.push(...started.workers);
    },
    async close() {
      await Promise.all(running.map((r) => r.close()));
      for (const listener of [server, metricsServer]) {
        if (!listener) continue;
        await new Promise<void>((resolve) => {
          listener.close(() => resolve());
          listener.closeAllConnections();
        });
      }
      app.close();
      // Only what this app made its own: a copy given another app's prefixes leaves them alone.
      const own = [
        !overrides.REDIS_KEY_PREFIX && config.redis.keyPrefix,
        !overrides.BULLMQ_PREFIX && `${config.queues.prefix}:`,
        !overrides.EVENTS_STREAM_NAME && config.events.streamName,
      ].filter((prefix): prefix is string => !!prefix);
      await deleteKeys(context, own);
      await context.close();
      if (!existing) await dropTestDatabase(database);
      try {
        failOnResponseMismatches(testApp);
      } finally {
        liveApps.delete(testApp);
      }
    },
  };
  liveApps.set(testApp, 0);
  return testApp;
}

export interface Reply {
  status: number;
  headers: Headers;
  body: any;
  text: string;
}

/** A small fetch wrapper: JSON in, JSON (or text) out. */
export async function call(
  url: string,
  init: { method?: string; body?: unknown; rawBody?: string; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...(init.headers ?? {}) };
  let body: string | undefined = init.rawBody;
  if (init.body !== undefined) {
    body = JSON.stringify(init.body);
    headers['content-type'] ??= 'application/json';
  }
  const response = await fetch(url, { method: init.method ?? (body ? 'POST' : 'GET'), headers, body, redirect: 'manual' });
  const text = await response.text();
  let parsed: unknown = text;
  if (/json/.test(response.headers.get('content-type') ?? '') && text) parsed = JSON.parse(text);
  return { status: response.status, headers: response.headers, body: parsed, text };
}

export async function eventually<T>(
  probe: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  { timeoutMs = 10_000, intervalMs = 50 } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** The environment of a process of our own (api or worker) sharing a test app's database, Redis and prefixes. */
export function processEnvironment(t: TestApp, overrides: Record<string, string> = {}): Record<string, string> {
  return {
    ...testEnvironment(t.database, overrides),
    DATABASE_URL: t.config.database.url,
    REDIS_URL: t.config.redis.url,
    REDIS_KEY_PREFIX: t.config.redis.keyPrefix,
    BULLMQ_PREFIX: t.config.queues.prefix,
    EVENTS_STREAM_NAME: t.config.events.streamName,
  };
}

/**
 * A worker process run from the sources (no build needed) on a test app's database, Redis and
 * prefixes, with `overrides` (its queues, lock times, fakes); resolves once it has started. The
 * caller kills it (a test of crashes SIGKILLs it mid-job).
 */
export async function startWorkerProcess(t: TestApp, overrides: Record<string, string> = {}): Promise<ChildProcess> {
  const env = processEnvironment(t, { LOG_LEVEL: 'info', ...overrides });
  const child = spawn(process.execPath, ['--import', 'tsx', 'workers/worker.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  await eventually(
    () => {
      if (child.exitCode !== null) throw new Error(`worker exited early (${child.exitCode}):\n${output}`);
      return output.includes('"worker started"');
    },
    { timeoutMs: 30_000 },
  );
  return child;
}
