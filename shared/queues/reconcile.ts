// The generic half of every reconciler: given the rows PostgreSQL says are pending, re-enqueue
// those whose job will not run any more. Each queue's declaration (workers/processors/) says which
// rows are pending and how their job is added.
import type { JobState, Queue } from 'bullmq';

export interface LostJobs {
  queue: Queue;
  /** Ids of rows waiting for work, oldest first; young rows are probably still being enqueued. */
  pendingRowIds: string[];
  jobId: (rowId: string) => string;
  enqueue: (rowId: string) => Promise<void>;
}

/** States from which a job still runs by itself (a stalled active job goes back to waiting). */
const RUNS_BY_ITSELF = new Set<JobState | 'unknown'>(['waiting', 'active', 'delayed', 'prioritized', 'waiting-children']);

/**
 * A pending row's job is lost when it is gone (a Redis data loss, a crash between commit and
 * enqueue), completed (its worker died between the effect and recording it), or failed while the
 * row still says pending: BullMQ fails a job whose lock lapsed twice (its worker killed twice, or
 * a Redis failover in between) without using its attempts, so the final-failure hook that marks the
 * row never ran. The row is the truth: its job id is freed and the work runs again.
 */
export async function requeueLostJobs({ queue, pendingRowIds, jobId, enqueue }: LostJobs): Promise<{ requeued: number }> {
  let requeued = 0;
  for (const rowId of pendingRowIds) {
    const state = await queue.getJobState(jobId(rowId));
    if (RUNS_BY_ITSELF.has(state)) continue;
    await queue.remove(jobId(rowId));
    await enqueue(rowId);
    requeued += 1;
  }
  return { requeued };
}
