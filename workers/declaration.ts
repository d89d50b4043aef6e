// What a queue declares about itself (workers/processors/<queue>.ts), so the worker process can run
// any queue without knowing it: its processor, its schedules, what to do when a job has used every
// attempt, and its reconciler.
import type { Job, Processor, WorkerOptions } from 'bullmq';
import type { Context } from '../shared/context';
import type { QueueName } from '../shared/queues/names';

export interface RunningProcessor {
  process: Processor;
  /** Releases what the processor opened (SMTP connections, say), after its last job. */
  close?: () => void | Promise<void>;
}

/** Every `everyMs`, or on a cron `pattern` read in the time zone `tz`. */
export type Schedule = { id: string; jobName: string } & ({ everyMs: number } | { pattern: string; tz: string });

export interface QueueDeclaration {
  name: QueueName;
  /** Builds the processor for this process. */
  start: (app: Context) => RunningProcessor;
  /** Repeating jobs, each upserted once per worker start (BullMQ keeps one scheduler per id). */
  schedules?: (app: Context) => Schedule[];
  /** Runs once a job has failed its last attempt (the row it serves records the failure). */
  onFinalFailure?: (app: Context, job: Job, err: Error) => Promise<void>;
  /**
   * Re-enqueues rows PostgreSQL says are pending and that have no live job (shared/queues/
   * reconcile.ts); run every RECONCILE_INTERVAL_SECONDS as the queue's `reconcile` job.
   */
  reconcile?: (app: Context) => Promise<{ requeued: number }>;
  /** Worker settings of this queue beyond its concurrency (a shorter lock, say). */
  workerOptions?: (app: Context) => Pick<WorkerOptions, 'lockDuration' | 'stalledInterval'>;
}
