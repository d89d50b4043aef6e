// `npm run bench [-- --quick]`: builds the service, seeds a fresh database, starts the service as
// `npm start` does (api + worker, production-like settings, bcrypt cost 12), and measures each hot
// path against its ceiling measured in the same run (bench/baseline-server.ts), alternating the
// two over several rounds after a warm-up. Load comes from bench/load.ts, another process. Prints
// one Markdown table and writes bench/results.md and bench/results.json (the recorded results,
// tracked in git); a quick run writes them under bench/tmp/ (git-ignored), so `.ci/run` leaves
// the working tree as it found it. Everything it starts is stopped, its database dropped and its
// Redis keys deleted, also when it fails.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import bcrypt from 'bcrypt';
import pg from 'pg';
import { Redis } from 'ioredis';
import { Queue } from 'bullmq';
import { SMTPServer } from 'smtp-server';
import { createLocalKms } from '../shared/crypto/kms';
import { emailContext } from '../shared/email/outbox';
import { queuePrefix } from '../shared/queues';
import { childPids, cpuMs, memoryMb, sampleRss, type LoadJob, type LoadReply, type LoadResult } from './common';
// Trading accounts on Kite Connect (issue 14): the fake Kite the tests use, and the service's own client.
import { startFakeKite, type FakeKite } from '../test/helpers/kite';
import { createKiteClient } from '../shared/trading-accounts/kite-client';
import { credentialsContext } from '../shared/trading-accounts/credentials';

const QUICK = process.argv.includes('--quick');
// `--only=authz,jwks` runs some scenarios (login, latency, refresh, authz, me, jwks, jobs, memory,
// kite, audit).
const ONLY = process.argv
  .find((a) => a.startsWith('--only='))
  ?.slice('--only='.length)
  .split(',');
const wanted = (scenario: string) => !ONLY || ONLY.includes(scenario);
// `--profile` writes V8 CPU profiles of the api and the worker to bench/profiles/ when they stop.
const PROFILE_DIR = process.argv.includes('--profile') ? path.resolve(__dirname, 'profiles') : null;
const ROOT = path.resolve(__dirname, '..');
// Only a full run records its results; a quick one (CI's smoke run) writes beside them, ignored.
const RESULTS_DIR = QUICK ? path.join(__dirname, 'tmp') : __dirname;
const CORES = os.cpus().length;
const SETTINGS = QUICK
  ? {
      users: 10_000,
      loginUsers: 8,
      rounds: 2,
      warmupSeconds: 1,
      seconds: 2,
      emails: 150,
      events: 2_000,
      memoryRequests: 30_000,
      frontier: [] as number[],
      // Audit trail (issue 15): rows of the events table, 10,000 of them the probe user's.
      auditRows: 200_000,
    }
  : {
      users: 100_000,
      loginUsers: 16,
      rounds: 4,
      warmupSeconds: 3,
      seconds: 5,
      emails: 500,
      events: 20_000,
      memoryRequests: 100_000,
      frontier: [1, 2, 4],
      // Audit trail (issue 15)
      auditRows: 1_000_000,
    };
const LOGIN_CONNECTIONS = 8; // Twice the default libuv threadpool: every bcrypt thread stays busy.
const THROUGHPUT_CONNECTIONS = 10;
const EMAIL_CONCURRENCY = 5; // the email queue's default concurrency (WORKER_CONCURRENCY_EMAIL)
const PROBE_RATE = 100; // requests/s of each latency probe (open loop)
const BCRYPT_COST = 12;
const PASSWORD = 'Bench-password-2026!';
// Everything this run names is its own, so two runs can share one PostgreSQL, Redis and machine:
// its Redis prefixes start with TAG; its database carries its pid, so another run's clean-up can
// tell it is live; it builds into a folder of its own (another run's build rewriting dist/ while
// this one's service loads it would break it); its ports are free ones, checked to be its own.
const RUN_ID = crypto.randomBytes(3).toString('hex');
const TAG = `bench${RUN_ID}`;
const DATABASE = `user_service_bench_${process.pid}_${RUN_ID}`;
const RUN_DATABASE = /^user_service_bench_(\d+)_[0-9a-f]+$/;
const BUILD_DIR = path.join(__dirname, 'tmp', TAG);
const PG_URL = new URL(process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/user_service');
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0';
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'user-service-bench-'));
const ISSUER = 'user_service';
const AUDIENCE = 'trading_platform';
const KID = 'key-001';

const log = (message: string) => process.stderr.write(`[bench] ${message}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

function databaseUrl(name: string): string {
  const url = new URL(PG_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

// ---------------------------------------------------------------- processes and their cleanup

const children: ChildProcess[] = [];
const extraPids: number[] = [];
let cleaned = false;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function spawnChild(name: string, args: string[], env: Record<string, string>, stdout: 'pipe' | 'log' = 'log'): ChildProcess {
  const logFile = fs.openSync(path.join(TMP, `${name}.log`), 'a');
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['pipe', stdout === 'pipe' ? 'pipe' : logFile, logFile],
  });
  children.push(child);
  return child;
}

function logTail(name: string): string {
  try {
    return fs
      .readFileSync(path.join(TMP, `${name}.log`), 'utf8')
      .split('\n')
      .slice(-30)
      .join('\n');
  } catch {
    return '';
  }
}

/** Stops every process this run started: SIGTERM first, SIGKILL after a grace period. */
async function stopProcesses(): Promise<void> {
  const pids = [...children.map((c) => c.pid).filter((p): p is number => p !== undefined), ...extraPids];
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  for (const pid of extraPids) if (alive(pid)) process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline && pids.some(alive)) await sleep(100);
  for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
}

/** Deletes every Redis key of this run: the service's and the baselines' prefixes all start with TAG. */
async function deleteRedisKeys(): Promise<number> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  let deleted = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${TAG}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) deleted += await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return deleted;
}

async function adminQuery<T extends pg.QueryResultRow = pg.QueryResultRow>(sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: databaseUrl('postgres') });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

/**
 * Drops the databases of runs killed before their clean-up. Never one whose run still lives (it
 * may be measuring right now), nor one without a pid in its name (an older bench's
 * `user_service_bench`, whose owner cannot be told from its name).
 */
async function dropStaleDatabases(): Promise<void> {
  const rows = await adminQuery<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE 'user_service_bench%'`);
  for (const { datname } of rows) {
    const pid = Number(RUN_DATABASE.exec(datname)?.[1]);
    if (!pid || alive(pid)) continue;
    await adminQuery(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(datname)} WITH (FORCE)`);
    log(`dropped ${datname}, left by a run that is gone`);
  }
}

/** The api answering on `url` is this run's: its key set holds the key this run's service created. */
async function assertOwnApi(url: string, keysDir: string): Promise<void> {
  const ours = crypto.createPublicKey(fs.readFileSync(path.join(keysDir, 'jwt', `${KID}.pub.pem`))).export({ format: 'jwk' });
  const { keys } = (await (await fetch(`${url}/v1/auth/.well-known/jwks.json`)).json()) as { keys: { n: string }[] };
  if (!keys.some((key) => key.n === ours.n)) throw new Error(`another process answers on ${url}: it took the port this run picked`);
}

async function cleanup(): Promise<void> {
  if (cleaned) return;
  cleaned = true;
  await stopProcesses().catch((err) => log(`stopping processes: ${err}`));
  await deleteRedisKeys().then(
    (n) => log(`deleted ${n} Redis keys under ${TAG}*`),
    (err) => log(`deleting Redis keys: ${err}`),
  );
  await adminQuery(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(DATABASE)} WITH (FORCE)`).then(
    () => log(`dropped database ${DATABASE}`),
    (err) => log(`dropping the database: ${err}`),
  );
  fs.rmSync(TMP, { recursive: true, force: true });
  fs.rmSync(BUILD_DIR, { recursive: true, force: true });
  if (PROFILE_DIR) log(`CPU profiles (open in Chrome DevTools or speedscope): ${PROFILE_DIR}`);
}

process.on('exit', () => {
  // Last resort (an exit without cleanup): nothing asynchronous runs here, so kill outright.
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const pid of extraPids) if (alive(pid)) process.kill(pid, 'SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    log(`${signal}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------- the load process

class LoadProcess {
  private next = 1;
  private readonly waiting = new Map<number, { resolve: (r: LoadResult[]) => void; reject: (e: Error) => void }>();
  private readonly child: ChildProcess;

  constructor(name: string) {
    this.child = spawnChild(name, ['--import', 'tsx', path.join(__dirname, 'load.ts')], {}, 'pipe');
    readline.createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const reply = JSON.parse(line) as LoadReply;
      const waiter = this.waiting.get(reply.id);
      this.waiting.delete(reply.id);
      if (reply.error) waiter?.reject(new Error(reply.error));
      else waiter?.resolve(reply.results ?? []);
    });
    this.child.on('exit', (code) => {
      for (const waiter of this.waiting.values()) waiter.reject(new Error(`load process exited (${code}): ${logTail(name)}`));
      this.waiting.clear();
    });
  }

  run(jobs: LoadJob[]): Promise<LoadResult[]> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.child.stdin!.write(`${JSON.stringify({ id, jobs })}\n`);
    });
  }
}

// ---------------------------------------------------------------- measurements

interface Run extends LoadResult {
  cpuMsPerRequest: number;
  peakRssMb: number;
}

interface Stats {
  rps: number;
  p50: number;
  p99: number;
  cpuMsPerRequest: number;
  peakRssMb: number;
  failures: number;
}

interface Row {
  scenario: string;
  baseline: string;
  target: string;
  ratio?: { median: number; min: number; max: number };
  product?: Stats;
  base?: Stats;
  pass?: boolean;
  note?: string;
  rounds?: { product: Run[]; base: Run[] };
}

let apiRequests = 0;

/** Runs `jobs` on a load process while reading the CPU time and RSS of `pid`; the first job is the one reported. */
async function measure(load: LoadProcess, jobs: LoadJob[], pid: number): Promise<Run> {
  const cpuBefore = cpuMs(pid);
  const stopSampling = sampleRss(pid);
  const [result] = await load.run(jobs);
  const peakRssMb = stopSampling();
  const cpu = cpuMs(pid) - cpuBefore;
  return { ...result, cpuMsPerRequest: result.requests ? cpu / result.requests : 0, peakRssMb };
}

function statsOf(runs: Run[]): Stats {
  return {
    rps: median(runs.map((r) => r.rps)),
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
    cpuMsPerRequest: median(runs.map((r) => r.cpuMsPerRequest)),
    peakRssMb: Math.max(...runs.map((r) => r.peakRssMb)),
    failures: runs.reduce((n, r) => n + r.non2xx + r.errors, 0),
  };
}

function ratioOf(values: number[]): { median: number; min: number; max: number } {
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

/** A warm-up of each, then rounds alternating which of the two goes first. */
async function alternate(measureProduct: () => Promise<Run>, measureBase: () => Promise<Run>): Promise<{ product: Run[]; base: Run[] }> {
  await measureProduct();
  await measureBase();
  const product: Run[] = [];
  const base: Run[] = [];
  for (let round = 0; round < SETTINGS.rounds; round++) {
    if (round % 2 === 0) {
      product.push(await measureProduct());
      base.push(await measureBase());
    } else {
      base.push(await measureBase());
      product.push(await measureProduct());
    }
  }
  return { product, base };
}

function pairRow(scenario: string, baseline: string, target: string, minimum: number, runs: { product: Run[]; base: Run[] }): Row {
  const ratio = ratioOf(runs.product.map((p, i) => p.rps / runs.base[i].rps));
  const product = statsOf(runs.product);
  const base = statsOf(runs.base);
  const note = product.failures || base.failures ? `non-2xx or errors: ${product.failures} product, ${base.failures} baseline` : undefined;
  return { scenario, baseline, target, ratio, product, base, pass: ratio.median >= minimum, note, rounds: runs };
}

// ---------------------------------------------------------------- kite (issue 14)

const KITE_CONCURRENCY = 5; // the kite queue's default concurrency (WORKER_CONCURRENCY_KITE)
const KITE_ACCOUNTS = QUICK ? 100 : 400;

/**
 * Verification jobs (exchange a request token, then GET /user/profile, each account its own api
 * key) against the same two calls made by the same client alone, at the same concurrency: what the
 * queue, the database and the envelopes cost on top of Kite's own latency.
 */
async function kiteScenario(db: pg.Pool, kite: FakeKite, serviceEnv: Record<string, string>, workerPid: number): Promise<Row> {
  log(`Kite verification jobs (${KITE_ACCOUNTS} accounts) vs the same Kite calls alone`);
  const kms = createLocalKms({ kms: { provider: 'local', keyPath: serviceEnv.LOCAL_KMS_KEY_PATH, previousKeyPaths: [] } });
  const connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const queue = new Queue('kite', { connection, prefix: queuePrefix(`${TAG}bull`, 'kite') });
  const client = createKiteClient({
    kite: { baseUrl: kite.url, timeoutMs: 10_000, maxRetries: 3 },
    tradingAccounts: { loginUrl: kite.url, requestsPerSecond: 10, retryBackoffMs: 500, expirySchedule: '', jobLockMs: 30_000 },
  });
  const { rows: owners } = await db.query<{ id: string }>('SELECT id FROM users ORDER BY id LIMIT $1', [KITE_ACCOUNTS]);
  const timed = async (pid: number, count: number, work: () => Promise<void>): Promise<Run> => {
    const cpuBefore = cpuMs(pid);
    const stopSampling = sampleRss(pid);
    const t0 = Date.now();
    await work();
    const seconds = (Date.now() - t0) / 1000;
    const cpu = cpuMs(pid) - cpuBefore;
    return {
      requests: count,
      ok: count,
      non2xx: 0,
      errors: 0,
      seconds,
      rps: count / seconds,
      p50: NaN,
      p99: NaN,
      cpuMsPerRequest: cpu / count,
      peakRssMb: stopSampling(),
    };
  };
  const jobs = async (count: number): Promise<Run> => {
    const ids = owners.slice(0, count).map(() => crypto.randomUUID());
    for (const [i, id] of ids.entries()) {
      const app = kite.addApp();
      const pending = { api_key: app.apiKey, api_secret: app.apiSecret, request_token: kite.requestToken(app.apiKey) };
      await db.query(
        `INSERT INTO trading_accounts (id, user_id, broker, status, api_key_fingerprint, api_key_masked, pending_credentials_encrypted, verification_round)
         VALUES ($1, $2, 'kite', 'pending_verification', $3, '************' || right($4, 4), $5, 1)`,
        [
          id,
          owners[i].id,
          crypto.randomBytes(16).toString('hex'),
          app.apiKey,
          kms.encrypt(JSON.stringify(pending), credentialsContext(id, 'pending_credentials_encrypted')),
        ],
      );
    }
    return timed(workerPid, count, async () => {
      await queue.addBulk(
        ids.map((accountId) => ({
          name: 'verify-trading-account',
          data: { accountId, round: 1 },
          opts: { jobId: `kite-verify-${accountId}-1` },
        })),
      );
      const deadline = Date.now() + 180_000;
      for (;;) {
        const { rows } = await db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM trading_accounts WHERE id = ANY($1) AND status <> 'pending_verification'`,
          [ids],
        );
        if (rows[0].n >= count) break;
        if (Date.now() > deadline) throw new Error('timed out waiting for Kite verifications');
        await sleep(10);
      }
      const { rows } = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM trading_accounts WHERE id = ANY($1) AND status = 'active'`,
        [ids],
      );
      if (rows[0].n !== count) throw new Error(`${count - rows[0].n} Kite verifications did not end active`);
    });
  };
  const alone = async (count: number): Promise<Run> => {
    const apps = Array.from({ length: count }, () => kite.addApp());
    const tokens = apps.map((app) => kite.requestToken(app.apiKey));
    return timed(process.pid, count, async () => {
      let next = 0;
      const lane = async () => {
        while (next < count) {
          const i = next++;
          const session = await client.createSession(apps[i].apiKey, apps[i].apiSecret, tokens[i]);
          await client.profile(apps[i].apiKey, session.accessToken);
        }
      };
      await Promise.all(Array.from({ length: KITE_CONCURRENCY }, lane));
    });
  };
  let warm = true;
  const size = (n: number) => (warm ? ((warm = false), Math.ceil(n / 5)) : n);
  const runs = await alternate(
    () => jobs(size(KITE_ACCOUNTS)),
    () => alone(KITE_ACCOUNTS),
  );
  await queue.close();
  connection.disconnect();
  return {
    ...pairRow(
      `Kite verification jobs → fake Kite (${KITE_ACCOUNTS} accounts, concurrency ${KITE_CONCURRENCY})`,
      'the same two Kite calls by the same client alone, same concurrency',
      '≥ 0.7',
      0.7,
      runs,
    ),
    note: 'accounts/s; each job: POST /session/token, store the access token, GET /user/profile, finish the round',
  };
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const started = Date.now();
  log(`${QUICK ? 'quick' : 'full'} run on ${CORES} cores, tag ${TAG}, scratch ${TMP}`);

  const startScript = path.join(BUILD_DIR, 'scripts', 'start.js');
  log(`building (npm run build, into ${path.relative(ROOT, BUILD_DIR)}/)`);
  const build = spawnSync('npm', ['run', 'build', '--silent', '--', '--outDir', BUILD_DIR], { cwd: ROOT, stdio: 'inherit' });
  if (build.status !== 0) {
    if (!fs.existsSync(startScript)) throw new Error('the build failed and emitted nothing');
    log('the build reported errors (another change in progress?); going on with what it emitted');
  }

  await dropStaleDatabases();
  await adminQuery(`CREATE DATABASE ${pg.escapeIdentifier(DATABASE)}`);

  // The local SMTP sink the worker sends to: counts messages, keeps nothing.
  let mailsReceived = 0;
  const smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    disableReverseLookup: true, // a reverse DNS lookup per connection would be the sink's cost, not the worker's
    logger: false,
    onData(stream, _session, callback) {
      stream.on('data', () => undefined);
      stream.on('end', () => {
        mailsReceived += 1;
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
  const smtpPort = (smtp.server.address() as net.AddressInfo).port;
  // Trading accounts on Kite Connect (issue 14): the local fake Kite the worker verifies against.
  const kite = await startFakeKite();

  const keysDir = path.join(TMP, 'keys');
  const [apiPort, basePort] = [await freePort(), await freePort()];
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const baseUrl = `http://127.0.0.1:${basePort}`;
  const rateLimits = Object.fromEntries(
    ['LOGIN', 'LOGIN_IP', 'LOGIN_EMAIL', 'REGISTER', 'REFRESH', 'PASSWORD_RESET', 'EMAIL', 'EMAIL_IP'].map((k) => [
      `RATELIMIT_${k}_ATTEMPTS`,
      '100000000',
    ]),
  );
  const serviceEnv: Record<string, string> = {
    ENVIRONMENT: 'development', // creates the keys in the scratch directory; otherwise production-like
    VALIDATE_RESPONSES: 'off', // as in production: development checks every answer against its schema
    HOST: '127.0.0.1',
    PORT: String(apiPort),
    DATABASE_URL: databaseUrl(DATABASE),
    REDIS_URL,
    REDIS_KEY_PREFIX: `${TAG}:`,
    BULLMQ_PREFIX: `${TAG}bull`,
    EVENTS_STREAM_NAME: `${TAG}:events`,
    PASSWORD_BCRYPT_COST: String(BCRYPT_COST),
    LOG_LEVEL: 'warn',
    LOG_FORMAT: 'json',
    JWT_KEYS_DIR: path.join(keysDir, 'jwt'),
    JWT_SIGNING_KEY_ID: KID,
    JWT_ISSUER: ISSUER,
    JWT_AUDIENCE: AUDIENCE,
    LOCAL_KMS_KEY_PATH: path.join(keysDir, 'master.key'),
    SMTP_HOST: '127.0.0.1',
    SMTP_PORT: String(smtpPort),
    SMTP_TLS: 'false',
    REFRESH_TOKEN_REUSE_INTERVAL_SECONDS: '10',
    ...rateLimits,
    // Trading accounts on Kite Connect (issue 14)
    KITE_API_BASE_URL: kite.url,
  };

  log(`starting the service (node ${path.relative(ROOT, startScript)})`);
  // Node refuses --cpu-prof in NODE_OPTIONS; the supervisor passes its own flags on to the api and worker.
  const profiling = PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : [];
  const service = spawnChild('service', [...profiling, startScript], serviceEnv);
  const readyBy = Date.now() + 90_000;
  for (;;) {
    if (service.exitCode !== null) throw new Error(`the service exited (${service.exitCode}):\n${logTail('service')}`);
    if (Date.now() > readyBy) throw new Error(`the service was not ready in 90 s:\n${logTail('service')}`);
    const ready = await fetch(`${apiUrl}/health/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    await sleep(200);
  }
  await assertOwnApi(apiUrl, keysDir);
  const [apiPid] = childPids(service.pid!, path.join(BUILD_DIR, 'api', 'server.js'));
  const [workerPid] = childPids(service.pid!, path.join(BUILD_DIR, 'workers', 'worker.js'));
  if (!apiPid || !workerPid) throw new Error('could not find the api and worker processes');
  extraPids.push(apiPid, workerPid);
  const rssAfterStart = memoryMb(apiPid);
  log(`service ready (api pid ${apiPid}, worker pid ${workerPid}, RSS ${rssAfterStart.toFixed(0)} MB)`);

  // ---- seed
  const db = new pg.Pool({ connectionString: databaseUrl(DATABASE), max: 4 });
  const seedStarted = Date.now();
  const sharedHash = await bcrypt.hash(crypto.randomBytes(16).toString('hex'), BCRYPT_COST);
  const roles = new Map<string, string>((await db.query('SELECT id, name FROM roles')).rows.map((r) => [r.name, r.id]));
  await db.query(
    `INSERT INTO users (id, email, name, password_hash, status, email_verified, email_verified_at)
     SELECT md5('u' || g)::uuid, 'user' || g || '@bench.test', 'User ' || g, $1, 'active', true, now()
       FROM generate_series(1, $2) g`,
    [sharedHash, SETTINGS.users],
  );
  await db.query(`INSERT INTO user_roles (user_id, role_id) SELECT md5('u' || g)::uuid, $1 FROM generate_series(1, $2) g`, [
    roles.get('viewer'),
    SETTINGS.users,
  ]);
  const loginEmails = Array.from({ length: SETTINGS.loginUsers }, (_, i) => `login${i + 1}@bench.test`);
  const ownHashes = await Promise.all([...loginEmails, 'probe@bench.test'].map(() => bcrypt.hash(PASSWORD, BCRYPT_COST)));
  for (const [i, email] of [...loginEmails, 'probe@bench.test'].entries()) {
    const {
      rows: [user],
    } = await db.query(
      `INSERT INTO users (email, name, password_hash, status, email_verified, email_verified_at) VALUES ($1, $2, $3, 'active', true, now()) RETURNING id`,
      [email, `Bench ${email}`, ownHashes[i]],
    );
    await db.query('INSERT INTO user_roles (user_id, role_id) VALUES ($1, $2), ($1, $3)', [
      user.id,
      roles.get('viewer'),
      roles.get('trader'),
    ]);
  }
  await db.query('ANALYZE');
  log(`seeded ${SETTINGS.users + loginEmails.length + 1} users in ${((Date.now() - seedStarted) / 1000).toFixed(1)} s`);

  // ---- the baselines' process, and the load processes
  const baseline = spawnChild(
    'baseline',
    [...profiling, '--import', 'tsx', path.join(__dirname, 'baseline-server.ts')],
    {
      BENCH_BASELINE: JSON.stringify({
        port: basePort,
        databaseUrl: databaseUrl(DATABASE),
        redisUrl: REDIS_URL,
        keyPrefix: `${TAG}:base:`,
        bullPrefix: `${TAG}noop`,
        workers: [
          { queue: 'noop-email', concurrency: EMAIL_CONCURRENCY },
          { queue: 'noop-events', concurrency: 1 },
        ],
        keysDir: path.join(keysDir, 'jwt'),
        kid: KID,
        issuer: ISSUER,
        audience: AUDIENCE,
        poolSize: 30,
      }),
    },
    'pipe',
  );
  await new Promise<void>((resolve, reject) => {
    baseline.stdout!.once('data', () => resolve());
    baseline.once('exit', (code) => reject(new Error(`the baseline server exited (${code}):\n${logTail('baseline')}`)));
  });
  const basePid = baseline.pid!;
  const load = new LoadProcess('load');
  const background = new LoadProcess('load-background');

  // A bearer token for the probe user, and the baselines' permission cache entry for them.
  const login = await fetch(`${apiUrl}/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': 'user-service-bench' },
    body: JSON.stringify({ email: 'probe@bench.test', password: PASSWORD }),
  });
  if (!login.ok) throw new Error(`probe login failed: ${login.status} ${await login.text()}`);
  const { access_token: accessToken, user: probeUser } = (await login.json()) as { access_token: string; user: { id: string } };
  const bearer = { authorization: `Bearer ${accessToken}` };
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  const { rows: probePermissions } = await db.query(
    `SELECT DISTINCT p.name FROM user_roles ur JOIN roles r ON r.id = ur.role_id
       JOIN role_permissions rp ON rp.role_id = r.id OR rp.role_id = r.inherits_role_id JOIN permissions p ON p.id = rp.permission_id
      WHERE ur.user_id = $1`,
    [probeUser.id],
  );
  await redis.set(`${TAG}:base:perms:${probeUser.id}`, JSON.stringify(probePermissions.map((p) => p.name)));

  const exists = async (method: 'GET' | 'POST', route: string, body?: unknown) => {
    const response = await fetch(`${apiUrl}${route}`, {
      method,
      headers: { ...bearer, ...(body !== undefined && { 'content-type': 'application/json' }) },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    await response.arrayBuffer();
    return response.status !== 404;
  };
  const hasMe = await exists('GET', '/v1/users/me');
  const hasAuthz = await exists('POST', '/v1/authz/check', { permission: 'orders:read' });
  const authedPath = hasMe ? '/v1/users/me' : '/v1/auth/sessions';

  const rows: Row[] = [];
  const track = (run: Run) => {
    apiRequests += run.requests;
    return run;
  };
  const onApi = (job: Omit<LoadJob, 'url'>, jobs: LoadJob[] = []) => measure(load, [{ url: apiUrl, ...job }, ...jobs], apiPid).then(track);
  const onBase = (job: Omit<LoadJob, 'url'>) => measure(load, [{ url: baseUrl, ...job }], basePid);
  const seconds = SETTINGS.seconds;

  // ---- login against the bcrypt ceiling
  const timeOneHash = async () => {
    const hash = ownHashes[0];
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = process.hrtime.bigint();
      await bcrypt.compare(PASSWORD, hash);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    return median(times);
  };
  /** What bcrypt alone achieves with every core busy (vCPUs that are SMT siblings do not add up). */
  const parallelHashRate = async () => {
    const count = CORES * 4;
    const t0 = process.hrtime.bigint();
    await Promise.all(Array.from({ length: count }, () => bcrypt.compare(PASSWORD, ownHashes[0])));
    return count / (Number(process.hrtime.bigint() - t0) / 1e9);
  };
  const loginJob = (duration: number, connections = LOGIN_CONNECTIONS): Omit<LoadJob, 'url'> => ({
    method: 'POST',
    path: '/v1/auth/login',
    connections,
    duration,
    logins: { emails: loginEmails, password: PASSWORD },
  });
  if (wanted('login')) {
    log('login vs the bcrypt ceiling');
    await onApi(loginJob(SETTINGS.warmupSeconds));
    const product: Run[] = [];
    const ceilings: number[] = [];
    for (let round = 0; round < SETTINGS.rounds; round++) {
      const hashMs = await timeOneHash();
      ceilings.push((CORES * 1000) / hashMs);
      product.push(await onApi(loginJob(seconds)));
    }
    const ratio = ratioOf(product.map((p, i) => p.rps / ceilings[i]));
    const stats = statsOf(product);
    const parallel = await parallelHashRate();
    rows.push({
      scenario: `login (cost ${BCRYPT_COST}, ${LOGIN_CONNECTIONS} concurrent)`,
      baseline: `bcrypt ceiling: ${CORES} cores ÷ one hash (${((1000 * CORES) / median(ceilings)).toFixed(0)} ms)`,
      target: '≥ 0.9',
      ratio,
      product: stats,
      base: { rps: median(ceilings), p50: NaN, p99: NaN, cpuMsPerRequest: (CORES * 1000) / median(ceilings), peakRssMb: NaN, failures: 0 },
      pass: ratio.median >= 0.9,
      note: `bcrypt alone on all cores at once: ${parallel.toFixed(1)}/s, login at ${(stats.rps / parallel).toFixed(2)} of that${stats.failures ? `; ${stats.failures} non-2xx or errors` : ''}`,
    });
  }

  // ---- latency of cheap requests while logins saturate the CPU
  if (wanted('latency')) {
    log('p99 of /health/live and an authenticated GET, with and without login load');
    const probes = (): Omit<LoadJob, 'url'>[] => [
      { path: '/health/live', connections: 2, duration: seconds, overallRate: PROBE_RATE },
      { path: authedPath, headers: bearer, connections: 2, duration: seconds, overallRate: PROBE_RATE },
    ];
    const probeRun = async (loginConnections: number) => {
      const jobs = probes().map((j) => ({ url: apiUrl, ...j }));
      if (!loginConnections) return { probes: await load.run(jobs), login: undefined };
      const loginRun = background.run([{ url: apiUrl, ...loginJob(seconds + 1.5, loginConnections) }]);
      await sleep(700);
      const results = await load.run(jobs);
      const [loginResult] = await loginRun;
      return { probes: results, login: loginResult };
    };
    const hashMs = await timeOneHash();
    const ceiling = (CORES * 1000) / hashMs;
    await probeRun(0);
    const without: LoadResult[][] = [];
    const withLogins: LoadResult[][] = [];
    const loginRatios: number[] = [];
    for (let round = 0; round < SETTINGS.rounds; round++) {
      const order = round % 2 === 0 ? [0, LOGIN_CONNECTIONS] : [LOGIN_CONNECTIONS, 0];
      for (const connections of order) {
        const { probes: results, login: loginResult } = await probeRun(connections);
        apiRequests += results.reduce((n, r) => n + r.requests, 0) + (loginResult?.requests ?? 0);
        if (connections) {
          withLogins.push(results);
          loginRatios.push(loginResult!.rps / ceiling);
        } else {
          without.push(results);
        }
      }
    }
    const asRun = (r: LoadResult): Run => ({ ...r, cpuMsPerRequest: NaN, peakRssMb: NaN });
    for (const [i, name] of ['/health/live', `GET ${authedPath} (bearer)`].entries()) {
      const product = statsOf(withLogins.map((rs) => asRun(rs[i])));
      const base = statsOf(without.map((rs) => asRun(rs[i])));
      rows.push({
        scenario: `${name} p99 while ${LOGIN_CONNECTIONS} concurrent logins run (login ratio ${median(loginRatios).toFixed(2)})`,
        baseline: 'the same without login load',
        target: 'p99 ≤ 10 ms',
        product,
        base,
        pass: product.p99 <= 10,
        note: `${PROBE_RATE} req/s probe${hasMe ? '' : '; /v1/users/me not built yet, /v1/auth/sessions used'}`,
        rounds: { product: withLogins.map((rs) => asRun(rs[i])), base: without.map((rs) => asRun(rs[i])) },
      });
    }
    frontier.push({
      loginConnections: LOGIN_CONNECTIONS,
      loginRatio: median(loginRatios),
      liveP99: statsOf(withLogins.map((rs) => asRun(rs[0]))).p99,
      authedP99: statsOf(withLogins.map((rs) => asRun(rs[1]))).p99,
    });
    for (const connections of SETTINGS.frontier) {
      const { probes: results, login: loginResult } = await probeRun(connections);
      apiRequests += results.reduce((n, r) => n + r.requests, 0) + (loginResult?.requests ?? 0);
      frontier.push({
        loginConnections: connections,
        loginRatio: loginResult!.rps / ceiling,
        liveP99: results[0].p99,
        authedP99: results[1].p99,
      });
    }
    frontier.sort((a, b) => a.loginConnections - b.loginConnections);
  }

  // ---- refresh rotation: every request presents a fresh token, seeded right before each run
  if (wanted('refresh')) {
    log('refresh rotation vs a bare route with the same round trips');
    let batch = 0;
    const estimate = { product: 400, base: 800 };
    const seedTokens = async (count: number) => {
      const prefix = `${TAG}-refresh-${++batch}-`;
      const client = await db.connect();
      try {
        await client.query('BEGIN');
        await client.query(
          `INSERT INTO sessions (id, user_id, persistent, amr, expires_at, user_agent)
           SELECT md5($1::text || g)::uuid, md5('u' || (1 + (g * 7919 + $3::int) % $4::int))::uuid, true, '{pwd}', now() + interval '30 days', 'user-service-bench'
             FROM generate_series(1, $2::int) g`,
          [prefix, count, batch * 104_729, SETTINGS.users],
        );
        await client.query(
          `INSERT INTO refresh_tokens (session_id, token_hash)
           SELECT md5($1::text || g)::uuid, encode(sha256(convert_to($1::text || g, 'UTF8')), 'hex') FROM generate_series(1, $2::int) g`,
          [prefix, count],
        );
        await client.query('COMMIT');
      } finally {
        client.release();
      }
      return { prefix, count };
    };
    const amountFor = (rps: number, duration: number) => Math.max(200, Math.min(50_000, Math.round(rps * duration)));
    let first = true;
    const runs = await alternate(
      async () => {
        const duration = first ? SETTINGS.warmupSeconds : seconds;
        first = false;
        const refresh = await seedTokens(amountFor(estimate.product, duration));
        const run = await onApi({
          method: 'POST',
          path: '/v1/auth/refresh',
          connections: THROUGHPUT_CONNECTIONS,
          amount: refresh.count,
          refresh,
        });
        estimate.product = run.rps;
        return run;
      },
      async () => {
        const refresh = await seedTokens(amountFor(estimate.base, seconds));
        const run = await onBase({ method: 'POST', path: '/refresh', connections: THROUGHPUT_CONNECTIONS, amount: refresh.count, refresh });
        estimate.base = run.rps;
        return run;
      },
    );
    rows.push(
      pairRow(
        'POST /v1/auth/refresh (rotation)',
        'bare Koa route: same PostgreSQL + Redis round trips, one RS256 signature',
        '≥ 0.7',
        0.7,
        runs,
      ),
    );
  }

  // ---- the plain throughput pairs
  const throughput = async (
    scenario: string,
    baselineName: string,
    target: number,
    product: Omit<LoadJob, 'url' | 'connections'>,
    base: Omit<LoadJob, 'url' | 'connections'>,
    built = true,
  ) => {
    if (!built) {
      rows.push({ scenario, baseline: baselineName, target: `≥ ${target}`, note: 'not built yet (404): skipped' });
      return;
    }
    log(scenario);
    let warm = true;
    const duration = () => (warm ? ((warm = false), SETTINGS.warmupSeconds) : seconds);
    const runs = await alternate(
      () => onApi({ ...product, connections: THROUGHPUT_CONNECTIONS, duration: duration() }),
      () => onBase({ ...base, connections: THROUGHPUT_CONNECTIONS, duration: seconds }),
    );
    rows.push(pairRow(scenario, baselineName, `≥ ${target}`, target, runs));
  };
  if (wanted('authz'))
    await throughput(
      'POST /v1/authz/check (cached)',
      'bare Koa route: one Redis GET + one JWT verification',
      0.7,
      { method: 'POST', path: '/v1/authz/check', headers: bearer, body: { permission: 'orders:read' } },
      { method: 'POST', path: '/authz/check', headers: bearer, body: { permission: 'orders:read' } },
      hasAuthz,
    );
  if (wanted('me'))
    await throughput(
      'GET /v1/users/me',
      'bare Koa route: session check, user, roles, permissions, accounts',
      0.7,
      { path: '/v1/users/me', headers: bearer },
      { path: '/users/me', headers: bearer },
      hasMe,
    );
  if (wanted('jwks'))
    await throughput(
      'GET /v1/auth/.well-known/jwks.json',
      'Koa hello-world',
      0.8,
      { path: '/v1/auth/.well-known/jwks.json' },
      { path: '/hello' },
    );

  // ---- audit trail (issue 15): a page of a user's events among many, and an export end to end
  if (wanted('audit')) await auditScenarios();
  async function auditScenarios(): Promise<void> {
    const subjectEvents = 10_000;
    log(`audit: seeding ${SETTINGS.auditRows.toLocaleString('en')} events, ${subjectEvents.toLocaleString('en')} of them the probe user's`);
    const seeded = Date.now();
    // One statement (the table is append-only: inserts only); published, so the relay leaves them.
    const every = Math.floor(SETTINGS.auditRows / subjectEvents);
    await db.query(
      `INSERT INTO events (id, type, user_id, actor_id, ip, user_agent, data, occurred_at, published_at)
       SELECT gen_random_uuid(), (ARRAY['user.login', 'session.created', 'user.updated', 'session.revoked'])[1 + g % 4], u, u,
              '10.0.0.1', 'bench', jsonb_build_object('session_id', md5(g::text)::uuid), now() - make_interval(secs => g), now()
         FROM generate_series(1, $1::int) g,
              LATERAL (SELECT CASE WHEN g % $2::int = 0 THEN $3::uuid ELSE md5('u' || (g % $4::int + 1))::uuid END AS u) AS who`,
      [SETTINGS.auditRows, every, probeUser.id, SETTINGS.users],
    );
    // As autovacuum leaves a table that grew over months: counts are index-only scans.
    await db.query('VACUUM ANALYZE events');
    log(`audit: seeded in ${((Date.now() - seeded) / 1000).toFixed(1)} s`);
    const deep = await fetch(`${apiUrl}/v1/audit/events?limit=50&offset=${5_000 - 50}`, { headers: bearer });
    if (deep.status === 404) {
      rows.push({ scenario: 'GET /v1/audit/events', baseline: '–', target: '–', note: 'not built yet (404): skipped' });
      return;
    }
    const cursor = ((await deep.json()) as { next_cursor: string }).next_cursor;
    const sameSql = 'bare Koa route: the same two SQL statements (page + total), one JWT verification';
    await throughput(
      'GET /v1/audit/events (first page of 10,000 among all rows)',
      sameSql,
      0.7,
      { path: '/v1/audit/events?limit=50', headers: bearer },
      { path: '/audit/events?limit=50', headers: bearer },
    );
    await throughput(
      'GET /v1/audit/events (by cursor, 5,000 events deep)',
      sameSql,
      0.7,
      { path: `/v1/audit/events?limit=50&cursor=${cursor}`, headers: bearer },
      { path: `/audit/events?limit=50&cursor=${cursor}`, headers: bearer },
    );

    // An export of 10,000 events (the probe user has a few more: it is truncated there), from the
    // request to the file, polled every 10 ms; a warm-up, then one per round (well under the limit).
    const exportOnce = async (format: 'csv' | 'json') => {
      const t0 = process.hrtime.bigint();
      const posted = await fetch(`${apiUrl}/v1/audit/export`, {
        method: 'POST',
        headers: { ...bearer, 'content-type': 'application/json' },
        body: JSON.stringify({ format }),
      });
      if (posted.status !== 202) throw new Error(`export request failed: ${posted.status} ${await posted.text()}`);
      const { export_id: id } = (await posted.json()) as { export_id: string };
      for (;;) {
        const r = await fetch(`${apiUrl}/v1/audit/export/${id}`, { headers: bearer });
        const body = await r.arrayBuffer();
        if (r.status === 200) {
          if (r.headers.get('x-export-event-count') !== '10000')
            throw new Error(`export of ${r.headers.get('x-export-event-count')} events`);
          return { ms: Number(process.hrtime.bigint() - t0) / 1e6, bytes: body.byteLength };
        }
        if (r.status !== 202) throw new Error(`export failed: ${r.status}`);
        await sleep(10);
      }
    };
    await exportOnce('csv');
    const times: number[] = [];
    let bytes = 0;
    for (let round = 0; round < SETTINGS.rounds; round++) {
      const one = await exportOnce(round % 2 ? 'json' : 'csv');
      times.push(one.ms);
      bytes = Math.max(bytes, one.bytes);
    }
    rows.push({
      scenario: 'POST /v1/audit/export → file ready (10,000 events, CSV and JSON), end to end',
      baseline: '–',
      target: '< 2 s',
      product: { rps: NaN, p50: median(times), p99: Math.max(...times), cpuMsPerRequest: NaN, peakRssMb: NaN, failures: 0 },
      pass: Math.max(...times) < 2000,
      note: `${times.length} exports: median ${(median(times) / 1000).toFixed(2)} s, slowest ${(Math.max(...times) / 1000).toFixed(2)} s (in the p50 / p99 columns, ms); files up to ${(bytes / 1e6).toFixed(1)} MB`,
    });
  }

  // ---- jobs: emails through SMTP and the event relay vs no-op BullMQ workers
  if (wanted('jobs')) {
    log('email jobs and event fan-out vs a no-op BullMQ worker');
    const kms = createLocalKms({ kms: { provider: 'local', keyPath: serviceEnv.LOCAL_KMS_KEY_PATH, previousKeyPaths: [] } });
    const connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    const emailQueue = new Queue('email', { connection, prefix: queuePrefix(`${TAG}bull`, 'email') });
    const eventsQueue = new Queue('events', { connection, prefix: queuePrefix(`${TAG}bull`, 'events') });
    const noopEmail = new Queue('noop-email', { connection, prefix: `${TAG}noop` });
    const noopEvents = new Queue('noop-events', { connection, prefix: `${TAG}noop` });
    const waitUntil = async (done: () => Promise<boolean>, what: string) => {
      const deadline = Date.now() + 180_000;
      while (!(await done())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await sleep(10);
      }
    };
    const jobRun = async (
      pid: number,
      count: number,
      start: () => Promise<void>,
      done: () => Promise<boolean>,
      what: string,
    ): Promise<Run> => {
      const cpuBefore = cpuMs(pid);
      const stopSampling = sampleRss(pid);
      const t0 = Date.now();
      await start();
      await waitUntil(done, what);
      const secondsTaken = (Date.now() - t0) / 1000;
      const cpu = cpuMs(pid) - cpuBefore;
      return {
        requests: count,
        ok: count,
        non2xx: 0,
        errors: 0,
        seconds: secondsTaken,
        rps: count / secondsTaken,
        p50: NaN,
        p99: NaN,
        cpuMsPerRequest: cpu / count,
        peakRssMb: stopSampling(),
      };
    };
    const noopRun = async (queue: Queue, count: number) => {
      // Completed jobs are kept (to be counted) and cleared before each run.
      await queue.clean(0, 0, 'completed');
      return jobRun(
        basePid,
        count,
        () =>
          queue
            .addBulk(Array.from({ length: count }, (_, i) => ({ name: 'noop', data: { i }, opts: { removeOnComplete: false } })))
            .then(() => undefined),
        async () => (await queue.getCompletedCount()) >= count,
        'no-op jobs',
      );
    };
    const emailRun = async (count: number) => {
      const ids = Array.from({ length: count }, () => crypto.randomUUID());
      const params = { name: 'Bench', when: new Date().toISOString(), ip: '127.0.0.1', userAgent: 'user-service-bench', country: null };
      for (let i = 0; i < ids.length; i += 500) {
        const chunk = ids.slice(i, i + 500);
        const values = chunk.map((_, j) => `($${j * 3 + 1}, 'new_device_login', $${j * 3 + 2}, $${j * 3 + 3})`).join(', ');
        await db.query(
          `INSERT INTO email_messages (id, template, to_address, params_encrypted) VALUES ${values}`,
          chunk.flatMap((id, j) => [id, `user${i + j + 1}@bench.test`, kms.encrypt(JSON.stringify(params), emailContext(id))]),
        );
      }
      const before = mailsReceived;
      return jobRun(
        workerPid,
        count,
        () =>
          emailQueue
            .addBulk(
              ids.map((emailId) => ({
                name: 'send-email',
                data: { emailId },
                opts: { jobId: `email-${emailId}`, attempts: 8, removeOnComplete: { count: 10_000 } },
              })),
            )
            .then(() => undefined),
        () => Promise.resolve(mailsReceived >= before + count),
        'emails at the SMTP sink',
      );
    };
    const streamName = serviceEnv.EVENTS_STREAM_NAME;
    const eventsRun = async (count: number) => {
      await db.query(
        `INSERT INTO events (id, type, user_id, actor_id, data) SELECT gen_random_uuid(), 'user.login', md5('u' || (1 + g % $2::int))::uuid, md5('u' || (1 + g % $2::int))::uuid, '{"method":"password"}'
           FROM generate_series(1, $1::int) g`,
        [count, SETTINGS.users],
      );
      const before = await redis.xlen(streamName);
      return jobRun(
        workerPid,
        count,
        () => eventsQueue.add('relay-events', {}, { removeOnComplete: true, removeOnFail: 100, attempts: 1 }).then(() => undefined),
        async () => (await redis.xlen(streamName)) >= before + count,
        'events on the stream',
      );
    };
    let warm = true;
    const size = (n: number) => (warm ? ((warm = false), Math.ceil(n / 5)) : n);
    const emails = await alternate(
      () => emailRun(size(SETTINGS.emails)),
      () => noopRun(noopEmail, SETTINGS.emails),
    );
    // A second reference: what the SMTP exchange alone reaches on the same sink and concurrency.
    const smtpRates: number[] = [];
    for (let round = 0; round < SETTINGS.rounds; round++) {
      const reply = await fetch(`${baseUrl}/smtp`, {
        method: 'POST',
        body: JSON.stringify({ count: SETTINGS.emails, concurrency: EMAIL_CONCURRENCY, port: smtpPort }),
      });
      if (!reply.ok) throw new Error(`the SMTP reference failed: ${reply.status} ${await reply.text()}`);
      smtpRates.push(SETTINGS.emails / ((await reply.json()) as { seconds: number }).seconds);
    }
    const emailRow = pairRow(
      `email jobs → SMTP sink (${SETTINGS.emails} jobs, concurrency ${EMAIL_CONCURRENCY})`,
      'no-op BullMQ worker, same Redis and concurrency',
      '≥ 0.5',
      0.5,
      emails,
    );
    const smtpRate = median(smtpRates);
    rows.push({
      ...emailRow,
      note: [
        emailRow.note,
        `SMTP alone (pooled nodemailer, same sink and concurrency, no queue or database): ${smtpRate.toFixed(0)}/s, email jobs at ${(emailRow.product!.rps / smtpRate).toFixed(2)} of that`,
      ]
        .filter(Boolean)
        .join('; '),
    });
    warm = true;
    const events = await alternate(
      () => eventsRun(size(SETTINGS.events)),
      () => noopRun(noopEvents, SETTINGS.events),
    );
    rows.push({
      ...pairRow(
        `event fan-out: outbox → stream (${SETTINGS.events} events)`,
        'no-op BullMQ worker, concurrency 1 (one job per event)',
        '≥ 0.5',
        0.5,
        events,
      ),
      note: 'events/s vs jobs/s: the relay publishes 500 events per job',
    });
    await Promise.all([emailQueue.close(), eventsQueue.close(), noopEmail.close(), noopEvents.close()]);
    connection.disconnect();
  }

  // ---- kite: verification jobs against the local fake Kite (issue 14)
  if (wanted('kite')) rows.push(await kiteScenario(db, kite, serviceEnv, workerPid));

  // ---- memory: RSS after at least memoryRequests requests vs after start-up
  if (wanted('memory')) {
    const missing = SETTINGS.memoryRequests - apiRequests;
    if (missing > 0) {
      log(`memory: ${missing} more requests to reach ${SETTINGS.memoryRequests}`);
      const half = Math.ceil(missing / 2);
      const results = await load.run([
        { url: apiUrl, path: authedPath, headers: bearer, connections: THROUGHPUT_CONNECTIONS / 2, amount: half },
        { url: apiUrl, path: '/v1/auth/.well-known/jwks.json', connections: THROUGHPUT_CONNECTIONS / 2, amount: half },
      ]);
      apiRequests += results.reduce((n, r) => n + r.requests, 0);
    }
    await sleep(1000);
    const rssNow = memoryMb(apiPid);
    const growth = rssNow - rssAfterStart;
    rows.push({
      scenario: `memory: api RSS after ${apiRequests.toLocaleString('en')} requests`,
      baseline: `RSS after start-up (${rssAfterStart.toFixed(0)} MB)`,
      target: 'growth ≤ 50 MB',
      product: { rps: NaN, p50: NaN, p99: NaN, cpuMsPerRequest: NaN, peakRssMb: memoryMb(apiPid, 'VmHWM'), failures: 0 },
      pass: growth <= 50,
      note: `now ${rssNow.toFixed(0)} MB: growth ${growth.toFixed(1)} MB; peak (VmHWM) ${memoryMb(apiPid, 'VmHWM').toFixed(0)} MB`,
    });
  }

  redis.disconnect();
  await db.end();
  smtp.close();
  await kite.close();

  const runtimeSeconds = (Date.now() - started) / 1000;
  const markdown = render(rows, runtimeSeconds);
  process.stdout.write(`\n${markdown}\n`);
  if (ONLY) {
    // A partial run is for investigating; the recorded results stay those of a whole run.
    log(`done in ${runtimeSeconds.toFixed(0)} s (only ${ONLY.join(', ')}: results files left as they were)`);
    return;
  }
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const written = ['results.md', 'results.json'].map((file) => path.relative(ROOT, path.join(RESULTS_DIR, file)));
  fs.writeFileSync(path.join(RESULTS_DIR, 'results.md'), `${markdown}\n`);
  fs.writeFileSync(
    path.join(RESULTS_DIR, 'results.json'),
    `${JSON.stringify(
      {
        date: new Date().toISOString(),
        mode: QUICK ? 'quick' : 'full',
        cores: CORES,
        node: process.version,
        cpu: os.cpus()[0]?.model,
        uvThreadpoolSize: process.env.UV_THREADPOOL_SIZE ?? '8 (npm start default)',
        settings: SETTINGS,
        runtimeSeconds,
        rows,
        frontier,
      },
      null,
      2,
    )}\n`,
  );
  log(`done in ${runtimeSeconds.toFixed(0)} s; wrote ${written.join(' and ')}`);
}

interface FrontierPoint {
  loginConnections: number;
  loginRatio: number;
  liveP99: number;
  authedP99: number;
}
const frontier: FrontierPoint[] = [];

function render(rows: Row[], runtimeSeconds: number): string {
  const n = (value: number | undefined, digits = 0) => (value === undefined || Number.isNaN(value) ? '–' : value.toFixed(digits));
  const pair = (a: number | undefined, b: number | undefined, digits = 0) => `${n(a, digits)} / ${n(b, digits)}`;
  const lines = [
    `Mode: ${QUICK ? 'quick' : 'full'} · ${CORES} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}) · Node ${process.version} · UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE ?? '8 (npm start default)'} · ${SETTINGS.users.toLocaleString('en')} users · ${SETTINGS.rounds} rounds of ${SETTINGS.seconds} s after a warm-up · ${runtimeSeconds.toFixed(0)} s in all`,
    '',
    'Pairs are product / baseline. CPU is the api process (the worker for jobs, the baseline process for baselines); latency is measured by the load process.',
    '',
    '| scenario | baseline | target | ratio: median [range] | req/s | p50 ms | p99 ms | CPU ms/req | peak RSS MB | result |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const row of rows) {
    const ratio = row.ratio ? `${row.ratio.median.toFixed(2)} [${row.ratio.min.toFixed(2)}–${row.ratio.max.toFixed(2)}]` : '–';
    const result = row.pass === undefined ? 'skipped' : row.pass ? 'met' : '**missed**';
    const p = row.product;
    const b = row.base;
    lines.push(
      `| ${row.scenario} | ${row.baseline} | ${row.target} | ${ratio} | ${pair(p?.rps, b?.rps)} | ${pair(p?.p50, b?.p50, 1)} | ${pair(p?.p99, b?.p99, 1)} | ${pair(p?.cpuMsPerRequest, b?.cpuMsPerRequest, 2)} | ${pair(p?.peakRssMb, b?.peakRssMb)} | ${result}${row.note ? ` (${row.note})` : ''} |`,
    );
  }
  if (frontier.length > 1) {
    lines.push(
      '',
      'Login concurrency frontier (concurrent login requests → share of the bcrypt ceiling, p99 of the probes):',
      '',
      '| concurrent logins | login ratio | /health/live p99 ms | authenticated GET p99 ms |',
      '|---|---|---|---|',
    );
    for (const f of frontier)
      lines.push(`| ${f.loginConnections} | ${f.loginRatio.toFixed(2)} | ${f.liveP99.toFixed(1)} | ${f.authedP99.toFixed(1)} |`);
  }
  return lines.join('\n');
}

main()
  .catch((err) => {
    process.exitCode = 1;
    log(`failed: ${(err as Error).stack ?? err}`);
  })
  .finally(() => cleanup().finally(() => process.exit()));
