// `npm start`: everything a fresh machine needs, then the api and one worker process.
// Creates the database when missing, applies migrations, creates development keys (here, once,
// before either child starts, so they never race), then supervises both children: a signal is
// passed on to them, and when one dies the other is stopped too.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { loadConfigOrExit } from '../shared/config';
import { createDb, ensureDatabase, migrateLatest } from '../shared/db';
import { createMissingKeys } from '../shared/crypto/keys';
import { exitOnStartupFailure, exitUnlessDependencies } from '../shared/process';
import { createLogger } from '../shared/logger';

async function prepare(): Promise<void> {
  const config = loadConfigOrExit();
  const logger = createLogger(config);
  await exitUnlessDependencies(config, { createsDatabase: true });
  if (await ensureDatabase(config.database.url)) logger.info('created the database');
  const db = createDb(config);
  try {
    await migrateLatest(db, config);
  } finally {
    await db.destroy();
  }
  if (config.environment === 'development') {
    for (const file of createMissingKeys(config)) logger.info({ file }, 'created development key');
  }
  logger.info(
    {
      api: `http://localhost:${config.port}`,
      docs: `http://localhost:${config.port}/docs`,
      redoc: `http://localhost:${config.port}/redoc`,
      bullBoard: `http://localhost:${config.port}/admin/queues`,
    },
    'starting the api and one worker',
  );
}

function run(script: string): ChildProcess {
  const extension = path.extname(__filename);
  const file = path.join(__dirname, '..', script + extension);
  // Node flags given to the supervisor (--max-old-space-size, --cpu-prof...) apply to its children
  // too, except the inspector's: two children on one debug port would clash (or wait, with -brk).
  const flags = process.execArgv.filter((flag) => !flag.startsWith('--inspect') && !flag.startsWith('--debug'));
  const loader = extension === '.ts' && !flags.includes('tsx') ? ['--import', 'tsx'] : [];
  const args = [...flags, ...loader, file];
  // Own process group: a terminal's Ctrl-C reaches only this supervisor, which passes it on once.
  // bcrypt, RS256 (WebCrypto) and DNS share libuv's threadpool (4 threads by default): a larger
  // pool, with BCRYPT_MAX_CONCURRENCY below it, keeps token checks fast while logins run.
  const env = { ...process.env, UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? '8' };
  return spawn(process.execPath, args, { stdio: 'inherit', env, detached: true });
}

async function main(): Promise<void> {
  await prepare();
  const children = [run('api/server'), run('workers/worker')];
  let exiting = false;
  const stopAll = (signal: NodeJS.Signals) => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  for (const child of children) {
    child.on('exit', (code) => {
      if (!exiting) {
        exiting = true;
        process.exitCode = code ?? 1;
        stopAll('SIGTERM');
      }
      if (children.every((c) => c.exitCode !== null || c.signalCode !== null)) process.exit(process.exitCode ?? 0);
    });
  }
  // A reload, not a stop: both re-read their keys (the api its signing keys and master keys, the
  // worker its master keys).
  process.on('SIGHUP', () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGHUP');
  });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      exiting = true;
      process.exitCode = 0;
      stopAll(signal);
    });
  }
}

main().catch(exitOnStartupFailure('start'));
