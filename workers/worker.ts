// The worker process: runs every declared queue (workers/processors/), or those named in
// WORKER_QUEUES, each with its configured concurrency. Any number of these can run on any number of
// machines; BullMQ shares the work. SIGTERM stops taking jobs and lets the running ones finish;
// SIGHUP re-reads the keys.
import os from 'node:os';
import { Worker, type Job, type Processor } from 'bullmq';
import { loadConfigOrExit } from '../shared/config';
import { createLogger } from '../shared/logger';
import { createContext, type Context } from '../shared/context';
import { createMissingKeys } from '../shared/crypto/keys';
import { createRedis, type Redis } from '../shared/redis';
import { JOB_NAMES, queuePrefix } from '../shared/queues';
import { exitOnStartupFailure, exitUnlessDependencies, onShutdown } from '../shared/process';
import { checkDatabaseSettings, checkReplicaSettings } from '../shared/db';
import type { QueueDeclaration, RunningProcessor } from './declaration';
import { DECLARATIONS } from './processors';

const SCHEDULED_JOB_OPTIONS = { removeOnComplete: true, removeOnFail: 100 };

/** The declaration's processor, plus its reconciler as the queue's `reconcile` job. */
function processorOf(app: Context, declaration: QueueDeclaration, running: RunningProcessor): Processor {
  const { reconcile } = declaration;
  if (!reconcile) return running.process;
  return (job, token) => (job.name === JOB_NAMES.reconcile ? reconcile(app) : running.process(job, token));
}

async function schedule(app: Context, declaration: QueueDeclaration): Promise<void> {
  const queue = app.queues[declaration.name];
  const schedules = declaration.schedules?.(app) ?? [];
  if (declaration.reconcile) {
    schedules.push({ id: `reconcile-${declaration.name}`, everyMs: app.config.queues.reconcileIntervalMs, jobName: JOB_NAMES.reconcile });
  }
  for (const { id, jobName, ...when } of schedules) {
    const repeat = 'everyMs' in when ? { every: when.everyMs } : { pattern: when.pattern, tz: when.tz };
    await queue.upsertJobScheduler(id, repeat, { name: jobName, opts: SCHEDULED_JOB_OPTIONS });
  }
}

async function onFailed(app: Context, declaration: QueueDeclaration, job: Job | undefined, err: Error): Promise<void> {
  app.logger.warn(
    { queue: declaration.name, jobId: job?.id, job: job?.name, attempt: job?.attemptsMade, error: err.message },
    'job failed',
  );
  if (!job || !declaration.onFinalFailure || job.name === JOB_NAMES.reconcile) return;
  if (job.attemptsMade < (job.opts.attempts ?? 1)) return;
  await declaration
    .onFinalFailure(app, job, err)
    .catch((e: unknown) => app.logger.error({ err: e, queue: declaration.name }, 'could not record a final job failure'));
}

const RESCHEDULE_ATTEMPTS = 30;
const RESCHEDULE_PAUSE_MS = 1000;

/** Upserts the declaration's schedules, retried while the queue's own connection is still reconnecting. */
async function restoreSchedules(app: Context, declaration: QueueDeclaration): Promise<void> {
  for (let attempt = 1; attempt <= RESCHEDULE_ATTEMPTS; attempt += 1) {
    try {
      await schedule(app, declaration);
      return;
    } catch (err) {
      if (attempt === RESCHEDULE_ATTEMPTS) {
        app.logger.error({ queue: declaration.name, error: (err as Error).message }, 'could not restore the schedules');
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, RESCHEDULE_PAUSE_MS).unref());
    }
  }
}

/**
 * Schedules (the reconciler, the outbox relay, Kite's expiry) live in Redis as a chain, each run's
 * job adding the next: a Redis that comes back empty has none, and a failover can lose the newest
 * link (replication is asynchronous). Without the reconciler nothing re-enqueues the pending rows,
 * without the relay no event is published. So they are upserted again after every reconnect of the
 * worker's connection and every RECONCILE_INTERVAL_SECONDS (a cluster failover need not reconnect
 * it). Upserting is idempotent: an intact chain keeps its next run.
 */
function keepSchedules(app: Context, declaration: QueueDeclaration, connection: Redis): () => void {
  // The first 'ready' too, when it comes after the schedules were first made.
  connection.on('ready', () => void restoreSchedules(app, declaration));
  // One try a tick: the next tick is the retry (a loop each tick would pile up while Redis is down).
  const timer = setInterval(() => {
    schedule(app, declaration).catch((err: Error) =>
      app.logger.warn({ queue: declaration.name, error: err.message }, 'schedules not checked; next try in RECONCILE_INTERVAL_SECONDS'),
    );
  }, app.config.queues.reconcileIntervalMs).unref();
  return () => clearInterval(timer);
}

export interface RunningWorkers {
  workers: Worker[];
  /** Stops taking jobs, waits for the running ones, then releases what the processors opened. */
  close(): Promise<void>;
}

export async function startWorkers(app: Context): Promise<RunningWorkers> {
  const wanted = app.config.queues.workerQueues;
  const declarations = DECLARATIONS.filter((d) => !wanted.length || wanted.includes(d.name));
  const workers: Worker[] = [];
  const processors: RunningProcessor[] = [];
  const connections: Redis[] = [];
  const stopKeeping: Array<() => void> = [];
  for (const declaration of declarations) {
    const running = declaration.start(app);
    processors.push(running);
    const connection = createRedis(app.config, 'worker', `worker:${declaration.name}`);
    connections.push(connection);
    const worker = new Worker(declaration.name, processorOf(app, declaration, running), {
      connection,
      prefix: queuePrefix(app.config.queues.prefix, declaration.name),
      // Stored on each job it processes (Bull Board shows it): which machine and process ran it.
      name: `${os.hostname()}:${process.pid}`,
      concurrency: app.config.queues.concurrency[declaration.name],
      // A job whose worker died is found by the stalled check once its lock lapses; a queue may
      // set its own (the kite declaration's lock and stalled check).
      lockDuration: app.config.queues.lockMs,
      stalledInterval: app.config.queues.lockMs,
      ...declaration.workerOptions?.(app),
    });
    worker.on('failed', (job, err) => void onFailed(app, declaration, job, err));
    worker.on('error', (err) => app.logger.error({ queue: declaration.name, error: err.message }, 'worker error'));
    await schedule(app, declaration);
    stopKeeping.push(keepSchedules(app, declaration, connection));
    workers.push(worker);
  }
  app.logger.info({ queues: workers.map((w) => w.name) }, 'worker started');
  return {
    workers,
    async close() {
      for (const stop of stopKeeping) stop();
      await Promise.all(workers.map((w) => w.close()));
      for (const running of processors) await running.close?.();
      for (const connection of connections) connection.disconnect();
    },
  };
}

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  const logger = createLogger(config);
  await exitUnlessDependencies(config);
  if (config.environment === 'development') createMissingKeys(config);
  const app = createContext(config, logger);
  // Workers open envelopes (email parameters, broker credentials): SIGHUP re-reads the master keys
  // now rather than at the next JWT_KEYS_RELOAD_SECONDS tick (Node's default would exit).
  process.on('SIGHUP', () => app.reloadKeys());
  await app.ready();
  await checkDatabaseSettings(app.db, config, logger);
  await checkReplicaSettings(app.dbReplica === app.db ? null : app.dbReplica, config, logger);
  const running = await startWorkers(app);
  onShutdown(logger, config.shutdownTimeoutMs, [
    ['workers', () => running.close()],
    ['context', () => app.close()],
  ]);
}

if (require.main === module) {
  main().catch(exitOnStartupFailure('worker'));
}
