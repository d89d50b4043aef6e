// The generic half of every reconciler: given the rows PostgreSQL says are pending, re-enqueue
// those whose job is gone (a Redis data loss, a crash between commit and enqueue). Each queue's
// declaration (workers/processors/) says which rows are pending and how their job is added.
import type { Queue } from 'bullmq';

export interface LostJobs {
  queue: Queue;
  /** Ids of rows waiting for work, oldest first; young rows are probably still being enqueued. */
  pendingRowIds: string[];
  jobId: (rowId: string) => string;
  enqueue: (rowId: string) => Promise<void>;
}

export async function requeueLostJobs({ queue, pendingRowIds, jobId, enqueue }: LostJobs): Promise<{ requeued: number }> {
  let requeued = 0;
  for (const rowId of pendingRowIds) {
    const job = await queue.getJob(jobId(rowId));
    if (job && !(await job.isCompleted())) continue;
    // A completed job whose row is still pending died between its effect and recording it: the
    // job id must be freed before the retry can be added.
    if (job) await job.remove();
    await enqueue(rowId);
    requeued += 1;
  }
  return { requeued };
}
