// The README promise: on a fresh database and an empty key directory, `npm start` creates the
// database, migrates, creates development keys, and runs the api and a separate worker process;
// the worker processes what is enqueued; SIGTERM stops both cleanly.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import { call, eventually, LogCapture, testEnvironment } from '../helpers/app';
import { startSmtp, type TestSmtp } from '../helpers/smtp';
import { ROOT, runDatabaseName } from '../helpers/env';
import { descendantsOf, freePort, isAlive } from '../helpers/processes';
import { parseConfig } from '../../shared/config';
import { createContext, type Context } from '../../shared/context';
import { createLogger } from '../../shared/logger';
import { writeEmail } from '../../shared/email/outbox';
import { enqueueEmail } from '../../shared/queues';
import { recordEvent } from '../../shared/events/outbox';

jest.setTimeout(120_000);

let smtp: TestSmtp;
let child: ChildProcess;
let output = '';
let url: string;
let env: Record<string, string>;
let keysDir: string;

beforeAll(async () => {
  smtp = await startSmtp();
  keysDir = fs.mkdtempSync(path.join(os.tmpdir(), 'us-start-'));
  const port = await freePort();
  // A database that does not exist yet: npm start must create it. Named after this run, so
  // another run's clean-up leaves it alone, and the global teardown drops it.
  const database = runDatabaseName('start');
  env = {
    ...testEnvironment(database, smtp.env()),
    PORT: String(port),
    HOST: '127.0.0.1',
    JWT_KEYS_DIR: path.join(keysDir, 'jwt'),
    LOCAL_KMS_KEY_PATH: path.join(keysDir, 'master.key'),
    LOCAL_KMS_KEYS_DIR: path.join(keysDir, 'kms'),
    // Keys are read again on SIGHUP only, so what is reloaded here SIGHUP did.
    JWT_KEYS_RELOAD_SECONDS: '0',
    LOG_LEVEL: 'info',
  };
  url = `http://127.0.0.1:${port}`;
  child = spawn('npm', ['start'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/root', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  // The build (tsc over the whole project) takes a minute or more when the machine is busy with
  // other test files: the api's own start-up gets its time after it, not what the build left.
  const running = () => {
    if (child.exitCode !== null) throw new Error(`npm start exited with code ${child.exitCode}`);
    return true;
  };
  const ready = async () => running() && (await call(`${url}/health/ready`).catch(() => ({ status: 0 }))).status === 200;
  await eventually(() => running() && output.includes('starting the api and one worker'), { timeoutMs: 180_000, intervalMs: 250 })
    .then(() => eventually(ready, { timeoutMs: 90_000, intervalMs: 250 }))
    .catch((err) => {
      throw new Error(`npm start did not become ready: ${err.message}\n${output}`);
    });
}, 300_000);

afterAll(async () => {
  // The api and worker run in their own process groups: reap the whole tree if a test failed.
  if (child && child.exitCode === null) {
    for (const { pid } of descendantsOf(child.pid!)) process.kill(pid, 'SIGKILL');
    child.kill('SIGKILL');
  }
  await smtp.close();
});

test('the api answers ready, with PostgreSQL and Redis checked', async () => {
  const r = await call(`${url}/health/ready`);
  expect(r.body).toEqual({ status: 'ok', checks: { database: 'ok', redis: 'ok' } });
});

test('development keys were created with mode 600', () => {
  for (const file of ['jwt/key-001.pem', 'jwt/key-001.pub.pem', 'master.key']) {
    expect(fs.statSync(path.join(keysDir, file)).mode & 0o777).toBe(0o600);
  }
});

test('the api and the worker run as two separate processes', () => {
  const children = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(findStartPid())], { encoding: 'utf8' });
  expect(children).toMatch(/dist\/api\/server\.js/);
  expect(children).toMatch(/dist\/workers\/worker\.js/);
});

function findStartPid(): number {
  // npm runs `node dist/scripts/start.js`, through a shell.
  const start = descendantsOf(child.pid!).find(({ args: [cmd, script] }) => /node$/.test(cmd ?? '') && script === 'dist/scripts/start.js');
  if (!start) throw new Error('start.js not found');
  return start.pid;
}

test('/openapi.json is a valid OpenAPI 3.1 document, and /docs and /redoc serve', async () => {
  const doc = await call(`${url}/openapi.json`);
  expect(doc.body.openapi).toBe('3.1.0');
  const result = await new Validator().validate(doc.body);
  expect(result.errors).toBeUndefined();
  expect(result.valid).toBe(true);
  expect(doc.body.paths['/v1/auth/.well-known/jwks.json']).toBeDefined();
  for (const page of ['/docs', '/redoc']) {
    const r = await call(`${url}${page}`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/text\/html/);
  }
  for (const asset of [
    '/docs/assets/swagger-ui-bundle.js',
    '/docs/assets/swagger-ui.css',
    '/docs/init.js',
    '/redoc/assets/redoc.standalone.js',
  ]) {
    const response = await fetch(`${url}${asset}`);
    expect(response.status).toBe(200);
    expect((await response.arrayBuffer()).byteLength).toBeGreaterThan(0);
  }
});

describe('work handed to the worker process', () => {
  let context: Context;
  beforeAll(() => {
    context = createContext(parseConfig(env), createLogger(parseConfig(env), new LogCapture()));
  });
  afterAll(() => context.close());

  test('an email enqueued is sent by the worker process', async () => {
    const id = await context.db.transaction((trx) =>
      writeEmail(trx, context.kms, { template: 'mfa_disabled', to: 'worker@example.com', params: { name: 'W' } }),
    );
    await enqueueEmail(context.queues, id);
    const mail = await smtp.waitFor((m) => m.to.includes('worker@example.com'), 20_000);
    expect(mail.subject).toBe('Two-factor authentication is off');
  });

  test("a committed event reaches the stream through the worker's relay", async () => {
    const id = await context.db.transaction((trx) => recordEvent(trx, { type: 'user.updated', data: { fields: ['name'] } }));
    const entry = await eventually(async () => {
      const entries = await context.redis.xrange(env.EVENTS_STREAM_NAME, '-', '+');
      return entries.find(([, fields]) => fields[1] === id);
    });
    expect(entry[1].slice(0, 4)).toEqual(['id', id, 'type', 'user.updated']);
  });
});

test('SIGHUP makes the api and the worker read their keys again, and stops neither', async () => {
  const startPid = findStartPid();
  const servicePids = descendantsOf(startPid).map(({ pid }) => pid);
  fs.mkdirSync(path.join(keysDir, 'kms'));
  fs.writeFileSync(path.join(keysDir, 'kms', 'next.key'), `${'ab'.repeat(32)}\n`, { mode: 0o600 });
  process.kill(startPid, 'SIGHUP');
  await eventually(() => output.split('"msg":"master keys reloaded"').length - 1 === 2);
  expect(servicePids.filter(isAlive)).toEqual(servicePids);
  expect(child.exitCode).toBeNull();
});

test('SIGTERM stops the api and the worker and exits 0', async () => {
  const startPid = findStartPid();
  const servicePids = descendantsOf(startPid).map(({ pid }) => pid);
  expect(servicePids).toHaveLength(2);
  process.kill(startPid, 'SIGTERM');
  const code = await new Promise<number | null>((resolve) =>
    child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', resolve),
  );
  expect(code).toBe(0);
  expect(output).toMatch(/"msg":"stopped"[\s\S]*"msg":"stopped"/);
  expect(servicePids.filter(isAlive)).toEqual([]);
});
