// The worker process: runs every queue, or those named in WORKER_QUEUES, each with its configured
// concurrency. Any number of these can run on any number of machines; BullMQ shares the work.
// SIGTERM stops taking jobs and lets the running ones finish.
import { Worker, type Processor } from 'bullmq';
import { loadConfigOrExit } from '../shared/config';
import { createLogger } from '../shared/logger';
import { createContext, type Context } from '../shared/context';
import { createMissingKeys } from '../shared/crypto/keys';
import { createRedis, type Redis } from '../shared/redis';
import { JOB_NAMES, QUEUE_NAMES, type QueueName } from '../shared/queues';
import { createMailer, type Mailer } from '../shared/email/sender';
import { exitUnlessDependencies, onShutdown } from '../shared/process';
import { emailProcessor, onEmailJobFailed } from './processors/email';
import { eventsProcessor } from './processors/events';

/** Queues that have work in this version; kite and audit-export gain processors with their features. */
function processors(app: Context, mailer: Mailer): Partial<Record<QueueName, Processor>> {
  return {
    email: emailProcessor(app, mailer),
    events: eventsProcessor(app),
  };
}

async function schedule(app: Context, queue: QueueName): Promise<void> {
  if (queue === 'events') {
    await app.queues.events.upsertJobScheduler(
      'relay-events',
      { every: app.config.events.relayIntervalMs },
      { name: JOB_NAMES.relayEvents, opts: { removeOnComplete: true, removeOnFail: 100 } },
    );
  }
  if (queue === 'email') {
    await app.queues.email.upsertJobScheduler(
      'reconcile-emails',
      { every: app.config.queues.reconcileIntervalMs },
      { name: JOB_NAMES.reconcile, opts: { removeOnComplete: true, removeOnFail: 100 } },
    );
  }
}

export interface RunningWorkers {
  workers: Worker[];
  /** Stops taking jobs, waits for the running ones, then closes the workers' connections. */
  close(): Promise<void>;
}

export async function startWorkers(app: Context): Promise<RunningWorkers> {
  const mailer = createMailer(app.config);
  const available = processors(app, mailer);
  const wanted = app.config.queues.workerQueues.length ? app.config.queues.workerQueues : [...QUEUE_NAMES];
  const workers: Worker[] = [];
  const connections: Redis[] = [];
  for (const name of wanted as QueueName[]) {
    const processor = available[name];
    if (!processor) continue;
    const connection = createRedis(app.config, 'worker', `worker:${name}`);
    connections.push(connection);
    const worker = new Worker(name, processor, {
      connection,
      prefix: app.config.queues.prefix,
      concurrency: app.config.queues.concurrency[name],
    });
    worker.on('failed', (job, err) => {
      app.logger.warn({ queue: name, jobId: job?.id, job: job?.name, attempt: job?.attemptsMade, error: err.message }, 'job failed');
      if (name === 'email')
        void onEmailJobFailed(app, job, err).catch((e) => app.logger.error({ err: e }, 'could not record email failure'));
    });
    worker.on('error', (err) => app.logger.error({ queue: name, error: err.message }, 'worker error'));
    await schedule(app, name);
    workers.push(worker);
  }
  app.logger.info({ queues: workers.map((w) => w.name) }, 'worker started');
  return {
    workers,
    async close() {
      await Promise.all(workers.map((w) => w.close()));
      mailer.transport?.close();
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
  await app.ready();
  const running = await startWorkers(app);
  onShutdown(logger, config.shutdownTimeoutMs, [
    ['workers', () => running.close()],
    ['context', () => app.close()],
  ]);
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`worker failed to start: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  });
}
