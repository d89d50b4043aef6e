// Runs the operators' CLI as an operator does: a separate process, given the environment of the
// app under test. Always asynchronously: test apps serve HTTP from the Jest process itself, and a
// synchronous spawn (spawnSync, execFileSync) freezes their event loop for as long as the CLI runs.
// Keep-alive timers of both the server and fetch's connection pool then fire late, and the next
// request went out on a socket the server was closing (`fetch failed … ECONNRESET`) whenever the
// CLI took longer than the server's 5-second keep-alive timeout, as it does on a loaded machine.
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { TestApp } from './app';
import { ROOT } from './env';

export interface CliResult {
  /** Exit code; null when the process was killed (see `signal`). */
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Everything the test app was configured with that the CLI reads: same database, Redis, prefixes and keys. */
export function cliEnvironment(t: TestApp, overrides: Record<string, string> = {}): Record<string, string> {
  const { config } = t;
  return {
    PATH: process.env.PATH!,
    ENVIRONMENT: config.environment,
    DATABASE_URL: config.database.url,
    REDIS_URL: config.redis.url,
    REDIS_CLUSTER_NODES:
      config.redis.topology.kind === 'cluster' ? config.redis.topology.nodes.map((n) => `${n.host}:${n.port}`).join(',') : '',
    REDIS_KEY_PREFIX: config.redis.keyPrefix,
    BULLMQ_PREFIX: config.queues.prefix,
    EVENTS_STREAM_NAME: config.events.streamName,
    JWT_KEYS_DIR: config.jwt.keysDir,
    LOCAL_KMS_KEY_PATH: config.kms.keyPath,
    LOCAL_KMS_KEYS_DIR: config.kms.keysDir ?? '',
    PASSWORD_BCRYPT_COST: String(config.password.bcryptCost),
    LOG_LEVEL: 'warn',
    ...overrides,
  };
}

/**
 * `npm run cli -- …` without npm: the TypeScript CLI under tsx, or with `compiled` the JavaScript
 * that `npm start` and the Docker image run (`dist/`, built by `npm test`'s `tsc`).
 */
export function runCli(
  args: string[],
  options: { env: Record<string, string>; input?: string; compiled?: boolean; timeoutMs?: number },
): Promise<CliResult> {
  return runScript(options.compiled ? 'dist/scripts/cli.js' : 'scripts/cli.ts', args, options);
}

/** Runs one of the project's entry points (`api/server.ts`, `workers/worker.ts`…; `.ts` under tsx) to its exit. */
export function runScript(
  script: string,
  args: string[],
  options: { env: Record<string, string>; input?: string; timeoutMs?: number },
): Promise<CliResult> {
  const entry = script.endsWith('.ts') ? ['--import', 'tsx', path.join(ROOT, script)] : [path.join(ROOT, script)];
  return runCommand(process.execPath, [...entry, ...args], options);
}

/** Runs a program in the project's folder to its exit, collecting what it prints. */
export function runCommand(
  file: string,
  args: string[],
  options: { env: Record<string, string>; input?: string; timeoutMs?: number },
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { cwd: ROOT, env: options.env, stdio: 'pipe' });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
    });
    // A process that exits before reading its input must not fail the test with EPIPE.
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}
