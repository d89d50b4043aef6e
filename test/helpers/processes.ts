// Real PostgreSQL and Redis servers that a fault test owns, so it can stop and start them without
// touching the shared instances every other test uses (DESIGN.md, "Fault tests"). Each one runs on
// a free port; `stop()` and `start()` keep that port, so clients configured with the URL reconnect
// to the same address. Anything still running when the process exits is killed (a safety net for
// a test run that dies before its afterAll).
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Redis as IORedis } from 'ioredis';
import { KEYS_DIR, REDIS_CLUSTER_NODES, REDIS_URL, ROOT } from './env';

export const PG_BIN = process.env.TEST_PG_BIN ?? '/usr/lib/postgresql/15/bin';
export const REDIS_SERVER = process.env.TEST_REDIS_SERVER ?? 'redis-server';

export interface OwnServer {
  url: string;
  port: number;
  /** Stops the server and waits until it is gone. Does nothing when it is already stopped. */
  stop(): Promise<void>;
  /** Starts the server again on the same port and waits until it answers. */
  start(): Promise<void>;
  /** Stops the server for good and removes what it left on disk. */
  close(): Promise<void>;
}

export interface OwnPostgres extends OwnServer {
  dataDir: string;
  /** The end of the server's log (errors it reported, for assertions and failure messages). */
  log(): string;
  /** Creates `name` (when missing) and migrates it through the project's CLI; returns its URL. */
  createDatabase(name?: string, env?: Record<string, string>): Promise<string>;
}

// ---------------------------------------------------------------------------------------------
// Safety net: synchronous cleanups run on process exit for whatever close() did not reach.

const exitCleanups = new Set<() => void>();
let exitHookInstalled = false;

function onExit(cleanup: () => void): () => void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const fn of exitCleanups) {
        try {
          fn();
        } catch {
          // best effort: the process is going away
        }
      }
    });
  }
  exitCleanups.add(cleanup);
  return () => exitCleanups.delete(cleanup);
}

// ---------------------------------------------------------------------------------------------
// Small process utilities.

/** A TCP port nobody listens on right now (the kernel picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether something accepts TCP connections on the port. */
function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
}

/** Runs a command to completion; rejects with its output when it fails or outlives `timeoutMs`. */
function run(command: string, args: string[], options: RunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      {
        env: options.env ?? process.env,
        cwd: options.cwd,
        timeout: options.timeoutMs ?? 60_000,
        killSignal: 'SIGKILL',
        maxBuffer: 16 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        if (err) {
          const what = `${command} ${args.join(' ')}`;
          const why = (err as { killed?: boolean }).killed ? `timed out after ${options.timeoutMs ?? 60_000} ms` : err.message;
          reject(new Error(`${what} failed: ${why}\n${stdout}${stderr}`));
        } else {
          resolve(stdout);
        }
      },
    );
  });
}

/** Resolves with the exit code (or the signal name) once `child` has exited. */
function exited(child: ChildProcess): Promise<number | string> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  if (child.signalCode !== null) return Promise.resolve(child.signalCode);
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
}

/** Sends `signal`, then SIGKILL if the process has not exited within `graceMs`. */
export async function terminate(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<number | string> {
  const done = exited(child);
  if (child.exitCode !== null || child.signalCode !== null) return done;
  child.kill(signal);
  const timer = new Promise<'late'>((r) => setTimeout(() => r('late'), graceMs).unref());
  if ((await Promise.race([done, timer])) === 'late') child.kill('SIGKILL');
  return done;
}

/** Keeps the last few kilobytes a child printed, for error messages. */
function tail(child: ChildProcess, limit = 8192): () => string {
  let text = '';
  const keep = (chunk: Buffer) => {
    text = (text + chunk.toString('utf8')).slice(-limit);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return () => text;
}

// ---------------------------------------------------------------------------------------------
// Redis.

/** Asks the server on `port` for PING and its process id; null when nothing answers in time. */
function redisPid(port: number, timeoutMs = 1000): Promise<number | null> {
  return new Promise((resolve) => {
    let buffer = '';
    const socket = net.connect({ host: '127.0.0.1', port });
    const finish = (value: number | null) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(value);
    };
    const timer = setTimeout(() => finish(null), timeoutMs);
    socket.on('error', () => finish(null));
    socket.on('connect', () => socket.write('PING\r\nINFO server\r\n'));
    socket.on('data', (chunk) => {
      buffer += chunk.toString('utf8');
      const pid = /process_id:(\d+)\r\n/.exec(buffer);
      if (buffer.startsWith('+PONG\r\n') && pid) finish(Number(pid[1]));
      else if (buffer.startsWith('-')) finish(null); // LOADING and other errors: not ready yet
    });
  });
}

/**
 * Starts a `redis-server` of this test's own, without persistence, on a free port (or `port`),
 * with `args` added to its command line (cluster or replication settings).
 */
export async function startRedis(options: { port?: number; args?: string[] } = {}): Promise<OwnServer> {
  const port = options.port ?? (await freePort());
  let child: ChildProcess | null = null;
  let forget: () => void = () => undefined;

  async function start(): Promise<void> {
    if (child && child.exitCode === null && child.signalCode === null) return;
    const proc = spawn(
      REDIS_SERVER,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', ...(options.args ?? [])],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = proc;
    const output = tail(proc);
    let spawnError: Error | null = null;
    proc.once('error', (err) => {
      spawnError = err;
    });
    forget();
    forget = onExit(() => proc.kill('SIGKILL'));
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (spawnError) throw new Error(`could not run ${REDIS_SERVER}: ${(spawnError as Error).message}`);
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`redis-server on port ${port} exited at start:\n${output()}`);
      // The pid check makes sure we talk to our server, not to one that took the port meanwhile.
      if ((await redisPid(port)) === proc.pid) return;
      if (Date.now() > deadline) {
        await terminate(proc, 'SIGKILL');
        throw new Error(`redis-server on port ${port} did not answer PING in time:\n${output()}`);
      }
      await sleep(50);
    }
  }

  async function stop(): Promise<void> {
    const proc = child;
    if (!proc) return;
    await terminate(proc, 'SIGTERM');
    child = null;
    forget();
  }

  await start();
  return { url: `redis://127.0.0.1:${port}/0`, port, start, stop, close: stop };
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL.

/** PostgreSQL refuses to run as root: every binary runs as the `postgres` user. */
function runAsPostgres(binary: string, args: string[], options: RunOptions = {}): Promise<string> {
  const command = path.join(PG_BIN, binary);
  if (process.getuid?.() === 0) return run('runuser', ['-u', 'postgres', '--', command, ...args], options);
  return run(command, args, options);
}

function runAsPostgresSync(binary: string, args: string[], cwd: string): void {
  const command = path.join(PG_BIN, binary);
  const [file, argv] = process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args];
  execFileSync(file, argv, { cwd, stdio: 'ignore', timeout: 15_000 });
}

function postgresIds(): { uid: number; gid: number } {
  const line = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('no "postgres" user on this machine: cannot run a PostgreSQL cluster as root');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/**
 * Initialises and starts a throwaway PostgreSQL cluster (trust auth, user postgres) on a free port,
 * with `settings` (`max_connections`, say) on its command line. With `standbyOf`, the cluster is a
 * streaming replica (hot standby) of that one instead: copied with `pg_basebackup -R`, which
 * writes the connection to the primary and `standby.signal`.
 */
export async function startPostgres(
  settings: Record<string, string> = {},
  options: { standbyOf?: { port: number } } = {},
): Promise<OwnPostgres> {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'us-fault-pg-'));
  const dataDir = path.join(base, 'data');
  const logFile = path.join(base, 'postgres.log');
  let running = false;
  const removeBase = () => fs.rmSync(base, { recursive: true, force: true });
  const forget = onExit(() => {
    if (running) runAsPostgresSync('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', '-t', '10', 'stop'], base);
    removeBase();
  });

  if (process.getuid?.() === 0) {
    const { uid, gid } = postgresIds();
    fs.chownSync(base, uid, gid);
  }
  const port = await freePort();
  // Durability is of no use to a throwaway cluster; skipping fsync makes it start and stop faster.
  const serverOptions = [
    `-p ${port} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c synchronous_commit=off`,
    ...Object.entries(settings).map(([name, value]) => `-c ${name}=${value}`),
  ].join(' ');
  const pgCtl = (args: string[], timeoutSeconds = 30) =>
    runAsPostgres('pg_ctl', ['-D', dataDir, '-t', String(timeoutSeconds), ...args], { cwd: base, timeoutMs: (timeoutSeconds + 10) * 1000 });
  const logTail = () => {
    try {
      return fs.readFileSync(logFile, 'utf8').slice(-4096);
    } catch {
      return '';
    }
  };

  async function start(): Promise<void> {
    if (running) return;
    try {
      await pgCtl(['-o', serverOptions, '-l', logFile, '-w', 'start']);
    } catch (err) {
      // A half-started server must not outlive the failure.
      await pgCtl(['-m', 'immediate', '-w', 'stop']).catch(() => undefined);
      throw new Error(`${(err as Error).message}\n${logTail()}`, { cause: err });
    }
    running = true;
  }

  async function stop(): Promise<void> {
    if (!running) return;
    await pgCtl(['-m', 'fast', '-w', 'stop']);
    running = false;
  }

  async function close(): Promise<void> {
    try {
      await stop().catch(async (err) => {
        // A fast stop that fails (a stuck session) must not leave the server behind.
        await pgCtl(['-m', 'immediate', '-w', 'stop']);
        running = false;
        throw err;
      });
    } finally {
      removeBase();
      forget();
    }
  }

  const url = `postgresql://postgres@127.0.0.1:${port}/postgres`;

  async function createDatabase(name = 'user_service', overrides: Record<string, string> = {}): Promise<string> {
    const target = new URL(url);
    target.pathname = `/${name}`;
    const env = {
      PATH: process.env.PATH,
      ENVIRONMENT: 'development',
      DATABASE_URL: target.toString(),
      REDIS_URL,
      REDIS_CLUSTER_NODES,
      JWT_KEYS_DIR: path.join(KEYS_DIR, 'jwt'),
      LOCAL_KMS_KEY_PATH: path.join(KEYS_DIR, 'master.key'),
      LOG_LEVEL: 'warn',
      ...overrides,
    };
    await run(process.execPath, ['--import', 'tsx', path.join(ROOT, 'scripts', 'cli.ts'), 'migrate'], {
      env,
      cwd: ROOT,
      timeoutMs: 60_000,
    });
    return target.toString();
  }

  try {
    if (options.standbyOf) {
      // initdb's trust rules already let loopback replication connections in.
      await runAsPostgres(
        'pg_basebackup',
        [
          '-h',
          '127.0.0.1',
          '-p',
          String(options.standbyOf.port),
          '-U',
          'postgres',
          '-D',
          dataDir,
          '-R',
          '-X',
          'stream',
          '-c',
          'fast',
          '--no-sync',
        ],
        { cwd: base, timeoutMs: 60_000 },
      );
    } else {
      await runAsPostgres('initdb', ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync'], {
        cwd: base,
        timeoutMs: 60_000,
      });
    }
    await start();
  } catch (err) {
    await close().catch(() => undefined);
    throw err;
  }
  const log = () => {
    try {
      return fs.readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };
  return { url, port, dataDir, log, start, stop, close, createDatabase };
}

/** Whether a process of this machine is still there. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The processes below `root` (its children, theirs, …), with their command lines split on blanks. */
export function descendantsOf(root: number): { pid: number; args: string[] }[] {
  const table = execFileSync('ps', ['-eo', 'pid=,ppid=,args='], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .map((line) => {
      const [pid, ppid, ...args] = line.trim().split(/\s+/);
      return { pid: Number(pid), ppid: Number(ppid), args };
    });
  const found = new Set([root]);
  for (let grew = true; grew;) {
    grew = false;
    for (const { pid, ppid } of table)
      if (found.has(ppid) && !found.has(pid)) {
        found.add(pid);
        grew = true;
      }
  }
  return table.filter(({ pid }) => found.has(pid) && pid !== root).map(({ pid, args }) => ({ pid, args }));
}

// ---------------------------------------------------------------------------------------------
// PgBouncer.

export const PGBOUNCER = process.env.TEST_PGBOUNCER ?? '/usr/sbin/pgbouncer';

/**
 * PgBouncer in transaction mode in front of `target` (a PostgreSQL of the test's own), on a free
 * port, as the postgres user (PgBouncer refuses to run as root). With no
 * `ignore_startup_parameters`: a client sending one it does not track is refused, as in production.
 */
export async function startPgBouncer(target: { port: number }, poolSize = 10): Promise<OwnServer> {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'us-pgbouncer-'));
  const removeBase = () => fs.rmSync(base, { recursive: true, force: true });
  if (process.getuid?.() === 0) {
    const { uid, gid } = postgresIds();
    fs.chownSync(base, uid, gid);
  }
  const port = await freePort();
  const ini = path.join(base, 'pgbouncer.ini');
  fs.writeFileSync(path.join(base, 'userlist.txt'), '"postgres" ""\n');
  fs.writeFileSync(
    ini,
    [
      '[databases]',
      `* = host=127.0.0.1 port=${target.port}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${path.join(base, 'userlist.txt')}`,
      'pool_mode = transaction',
      `default_pool_size = ${poolSize}`,
      'max_client_conn = 500',
      `logfile = ${path.join(base, 'pgbouncer.log')}`,
      '',
    ].join('\n'),
  );
  const [file, argv] = process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', PGBOUNCER, ini]] : [PGBOUNCER, [ini]];
  const proc = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  const output = tail(proc);
  const forget = onExit(() => {
    proc.kill('SIGKILL');
    removeBase();
  });
  const close = async () => {
    await terminate(proc, 'SIGTERM');
    forget();
    removeBase();
  };
  const deadline = Date.now() + 10_000;
  while (!(await portAnswers(port))) {
    if (proc.exitCode !== null || proc.signalCode !== null || Date.now() > deadline) {
      await close();
      throw new Error(`pgbouncer did not start on port ${port}:\n${output()}`);
    }
    await sleep(50);
  }
  const unsupported = () => Promise.reject(new Error('PgBouncer is not restarted by these tests'));
  return { url: `postgresql://postgres@127.0.0.1:${port}/postgres`, port, stop: unsupported, start: unsupported, close };
}

// ---------------------------------------------------------------------------------------------
// Redis Cluster.

export interface OwnRedisCluster {
  /** `host:port` of every node, for REDIS_CLUSTER_NODES. */
  nodes: string[];
  /** The nodes' servers, in the order of `nodes` (the first three started as primaries). */
  servers: OwnServer[];
  /** Resolves once every node reports cluster_state:ok. */
  waitUntilOk(timeoutMs?: number): Promise<void>;
  /** Runs `fn` on a plain connection to one node (`host:port`), closed after. */
  onNode<T>(node: string, fn: (client: IORedis) => Promise<T>): Promise<T>;
  /** The service's settings for this cluster. */
  env(): Record<string, string>;
  close(): Promise<void>;
}

const REDIS_CLI = process.env.TEST_REDIS_CLI ?? 'redis-cli';

/** Answers of `redis-cli -p <port> <args…>`, or null when the node does not answer. */
async function redisCli(port: number, ...args: string[]): Promise<string | null> {
  return run(REDIS_CLI, ['-p', String(port), ...args], { timeoutMs: 5000 }).catch(() => null);
}

/**
 * A Redis Cluster of the test's own: 3 primaries and 3 replicas on free ports, no persistence,
 * `cluster-node-timeout` 2 s (a lost primary is replaced within seconds).
 */
export async function startRedisCluster(): Promise<OwnRedisCluster> {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'us-redis-cluster-'));
  const ports = await Promise.all(Array.from({ length: 6 }, () => freePort()));
  const servers = await Promise.all(
    ports.map((port) =>
      startRedis({
        port,
        args: [
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          path.join(base, `nodes-${port}.conf`),
          '--cluster-node-timeout',
          '2000',
          '--dir',
          base,
        ],
      }),
    ),
  );
  const close = async () => {
    await Promise.all(servers.map((s) => s.close()));
    fs.rmSync(base, { recursive: true, force: true });
  };
  const waitUntilOk = async (timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const infos = await Promise.all(ports.map((port) => redisCli(port, 'cluster', 'info')));
      // And every replica in sync with its primary: until then a WAIT gets no acknowledgement.
      const replication = await Promise.all(ports.map((port) => redisCli(port, 'info', 'replication')));
      const synced = replication.every((info) => info?.includes('role:master') || info?.includes('master_link_status:up'));
      if (synced && infos.every((info) => info?.includes('cluster_state:ok'))) return;
      if (Date.now() > deadline) throw new Error(`the Redis Cluster did not reach cluster_state:ok:\n${infos.join('\n')}`);
      await sleep(100);
    }
  };
  try {
    await run(REDIS_CLI, ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes'], {
      timeoutMs: 60_000,
    });
    await waitUntilOk();
  } catch (err) {
    await close();
    throw err;
  }
  const onNode = async <T>(node: string, fn: (client: IORedis) => Promise<T>): Promise<T> => {
    const client = new IORedis(`redis://${node}`, { maxRetriesPerRequest: 1 });
    try {
      return await fn(client);
    } finally {
      client.disconnect();
    }
  };
  const nodes = ports.map((p) => `127.0.0.1:${p}`);
  const env = () => ({ REDIS_URL: `redis://${nodes[0]}/0`, REDIS_CLUSTER_NODES: nodes.join(',') });
  return { nodes, servers, waitUntilOk, onNode, env, close };
}

// ---------------------------------------------------------------------------------------------
// Redis Sentinel.

export interface OwnSentinelSet {
  /** `host:port` of each sentinel, for REDIS_SENTINELS. */
  sentinels: string[];
  masterName: string;
  /** The first primary and its replica (their roles swap at a failover). */
  primary: OwnServer;
  replica: OwnServer;
  /** The port of the server the sentinels currently name as primary. */
  currentPrimaryPort(): Promise<number | null>;
  /** The service's settings for this set (REDIS_URL gives only the database index). */
  env(): Record<string, string>;
  close(): Promise<void>;
}

/** A `redis-server --sentinel` on `port`, with its own (writable) configuration file. */
async function startSentinel(base: string, port: number, primaryPort: number, masterName: string): Promise<() => Promise<void>> {
  const conf = path.join(base, `sentinel-${port}.conf`);
  fs.writeFileSync(
    conf,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${base}`,
      `sentinel monitor ${masterName} 127.0.0.1 ${primaryPort} 2`,
      `sentinel down-after-milliseconds ${masterName} 1000`,
      `sentinel failover-timeout ${masterName} 5000`,
      `sentinel parallel-syncs ${masterName} 1`,
      '',
    ].join('\n'),
  );
  const proc = spawn(REDIS_SERVER, [conf, '--sentinel'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output = tail(proc);
  const forget = onExit(() => proc.kill('SIGKILL'));
  const deadline = Date.now() + 10_000;
  while ((await redisPid(port)) !== proc.pid) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`sentinel on port ${port} did not start:\n${output()}`);
    }
    await sleep(50);
  }
  return async () => {
    await terminate(proc, 'SIGTERM');
    forget();
  };
}

/** A primary, its replica and three sentinels (quorum 2, a primary down after 1 s), all the test's own. */
export async function startSentinelSet(masterName = 'mymaster'): Promise<OwnSentinelSet> {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'us-redis-sentinel-'));
  // Their own folder: a replica's full sync writes an RDB file into the working directory.
  const primary = await startRedis({ args: ['--dir', base] });
  const replica = await startRedis({ args: ['--dir', base, '--replicaof', '127.0.0.1', String(primary.port)] });
  // In sync before anything runs: until then a WAIT for one replica (a revocation) gets no answer.
  for (const deadline = Date.now() + 15_000; !(await redisCli(replica.port, 'info', 'replication'))?.includes('master_link_status:up');) {
    if (Date.now() > deadline) throw new Error('the Redis replica did not sync with its primary in time');
    await sleep(50);
  }
  const ports = await Promise.all([freePort(), freePort(), freePort()]);
  const stops: Array<() => Promise<void>> = [];
  const close = async () => {
    await Promise.all(stops.map((stop) => stop()));
    await Promise.all([primary.close(), replica.close()]);
    fs.rmSync(base, { recursive: true, force: true });
  };
  try {
    for (const port of ports) stops.push(await startSentinel(base, port, primary.port, masterName));
  } catch (err) {
    await close();
    throw err;
  }
  const currentPrimaryPort = async () => {
    const answer = await redisCli(ports[0], 'sentinel', 'get-master-addr-by-name', masterName);
    const port = Number(answer?.trim().split('\n')[1]);
    return Number.isInteger(port) && port > 0 ? port : null;
  };
  const sentinels = ports.map((p) => `127.0.0.1:${p}`);
  const env = () => ({ REDIS_URL: 'redis://127.0.0.1:6379/0', REDIS_SENTINELS: sentinels.join(','), REDIS_SENTINEL_MASTER: masterName });
  return { sentinels, masterName, primary, replica, currentPrimaryPort, env, close };
}

// ---------------------------------------------------------------------------------------------
// The service's own processes.

export interface ServiceProcess {
  child: ChildProcess;
  /** For an api: its base URL. */
  url: string;
  output(): string;
  /** Waits until the process has exited. */
  exited(): Promise<number | string>;
}

/**
 * Runs an api (`api/server`) or a worker (`workers/worker`) as a process of its own, from the
 * compiled code (`npm test` builds it first), with `env`; resolves once the api is ready or the
 * worker has started. Killed at exit at the latest.
 */
export async function startServiceProcess(kind: 'api' | 'worker', env: Record<string, string>): Promise<ServiceProcess> {
  const script = path.join(ROOT, 'dist', kind === 'api' ? 'api/server.js' : 'workers/worker.js');
  if (!fs.existsSync(script)) throw new Error(`${script} is missing: run \`npm run build\` first (npm test does)`);
  const port = kind === 'api' ? await freePort() : 0;
  const child = spawn(process.execPath, [script], {
    cwd: ROOT,
    // Info: the worker's readiness is its "worker started" line.
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env, PORT: String(port), LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = tail(child, 256 * 1024);
  const forget = onExit(() => child.kill('SIGKILL'));
  child.once('exit', () => forget());
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${kind} exited at start:\n${output()}`);
    if (kind === 'worker' && output().includes('"worker started"')) break;
    if (
      kind === 'api' &&
      (await fetch(`${url}/health/ready`).then(
        (r) => r.status === 200,
        () => false,
      ))
    )
      break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${kind} did not become ready:\n${output()}`);
    }
    await sleep(100);
  }
  return { child, url, output, exited: () => exited(child) };
}
