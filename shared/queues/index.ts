// The queues and their enqueue helpers. Jobs carry ids, never secrets, and use deterministic job
// ids (./names.ts) so that the same work enqueued twice runs once.
import { Queue, type JobsOptions } from 'bullmq';
import { tagged, type Redis } from '../redis';
import type { Config } from '../config';
import type { Logger } from '../logger';
import { UnavailableError } from '../errors';
import { JOB_NAMES, QUEUE_NAMES, jobIds, type QueueName } from './names';

export { JOB_NAMES, QUEUE_NAMES, jobIds, type QueueName };

export type Queues = Record<QueueName, Queue>;

export function defaultJobOptions(config: Pick<Config, 'queues'>): JobsOptions {
  return {
    attempts: config.queues.attempts,
    // Exponential with jitter so a burst of failures does not retry in lockstep.
    backoff: { type: 'exponential', delay: config.queues.backoffMs, jitter: 0.5 },
    removeOnComplete: { age: 24 * 3600, count: 10_000 },
    // Failed jobs stay for inspection in Bull Board.
    removeOnFail: { age: 30 * 24 * 3600 },
  };
}

/**
 * BullMQ's key prefix for one queue: BULLMQ_PREFIX and the queue's own hash tag. BullMQ's scripts
 * touch many keys of a queue at once, which a Redis Cluster allows only within one slot; a tag per
 * queue (not one for all) spreads the queues over the cluster's nodes, as BullMQ's guide advises.
 */
export function queuePrefix(bullPrefix: string, name: string): string {
  return `${bullPrefix}:${tagged(name)}`;
}

export function createQueues(config: Pick<Config, 'queues'>, connection: Redis, logger?: Logger): Queues {
  const entries = QUEUE_NAMES.map((name) => {
    const queue = new Queue(name, {
      connection,
      prefix: queuePrefix(config.queues.prefix, name),
      defaultJobOptions: defaultJobOptions(config),
    });
    // Without a listener BullMQ prints every reconnect attempt; /health/ready reports the outage.
    queue.on('error', (err) => logger?.debug({ queue: name, error: err.message }, 'queue connection error'));
    return [name, queue];
  });
  return Object.fromEntries(entries) as Queues;
}

export async function closeQueues(queues: Queues): Promise<void> {
  await Promise.all(Object.values(queues).map((q) => q.close()));
}

/** Adds a job; a Redis that cannot be reached becomes a 503, at once. */
async function add(queue: Queue, name: string, data: Record<string, unknown>, opts: JobsOptions): Promise<void> {
  try {
    await queue.add(name, data, opts);
  } catch (err) {
    throw new UnavailableError('The job queue is unavailable; try again shortly.', err);
  }
}

/** Sends the email_messages row `emailId`. */
export function enqueueEmail(queues: Queues, emailId: string): Promise<void> {
  return add(queues.email, JOB_NAMES.sendEmail, { emailId }, { jobId: jobIds.email(emailId) });
}

/** Handles the address_requests row `requestId`. */
export function enqueueAddressRequest(queues: Queues, requestId: string): Promise<void> {
  return add(queues.email, JOB_NAMES.addressRequest, { requestId }, { jobId: jobIds.addressRequest(requestId) });
}

/**
 * Enqueues the job of a row that is already committed. A queue outage leaves the row to its
 * queue's reconciler rather than failing a request whose change has happened.
 */
export async function enqueueAfterCommit(logger: Logger, enqueue: () => Promise<void>, row: Record<string, string>): Promise<void> {
  try {
    await enqueue();
  } catch (err) {
    logger.warn({ ...row, error: (err as Error).message }, 'job left for the reconciler');
  }
}

// Trading accounts on Kite Connect (issue 14)
/** Verifies round `round` of the trading account `accountId` (one job per round). */
export function enqueueVerification(queues: Queues, accountId: string, round: number): Promise<void> {
  return add(queues.kite, JOB_NAMES.verifyTradingAccount, { accountId, round }, { jobId: jobIds.kiteVerify(accountId, round) });
}

/** Ends the Kite session of the unlinked account `accountId`, best effort. */
export function enqueueKiteLogout(queues: Queues, accountId: string): Promise<void> {
  return add(queues.kite, JOB_NAMES.kiteLogout, { accountId }, { jobId: jobIds.kiteLogout(accountId), attempts: 3 });
}

// Audit trail (issue 15)
/** Writes the file of the audit_exports row `exportId`. */
export function enqueueAuditExport(queues: Queues, exportId: string): Promise<void> {
  return add(queues['audit-export'], JOB_NAMES.auditExport, { exportId }, { jobId: jobIds.auditExport(exportId) });
}
