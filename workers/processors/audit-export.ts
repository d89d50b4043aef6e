// The audit-export queue: writes the file of an audit_exports row (one job per row, its id the
// row's), marks the row failed once a job has used every attempt, re-enqueues pending rows whose
// job was lost, and runs retention on a schedule (expired export rows and files; never events).
import type { Job } from 'bullmq';
import type { Context } from '../../shared/context';
import { enqueueAuditExport, JOB_NAMES, jobIds } from '../../shared/queues';
import { requeueLostJobs } from '../../shared/queues/reconcile';
import { markExportFailed, pendingExportIds, purgeExpiredExports, runExport } from '../../shared/audit/exports';
import type { QueueDeclaration } from '../declaration';

const RETENTION_EVERY_MS = 3600 * 1000;

const exportIdOf = (job: Job) => (job.data as { exportId: string }).exportId;

export async function reconcileExports(app: Context): Promise<{ requeued: number }> {
  return requeueLostJobs({
    queue: app.queues['audit-export'],
    pendingRowIds: await pendingExportIds(app, app.config.queues.reconcileAfterSeconds),
    jobId: jobIds.auditExport,
    enqueue: (id) => enqueueAuditExport(app.queues, id),
  });
}

export const auditExport: QueueDeclaration = {
  name: 'audit-export',
  start(app) {
    return {
      process: (job) => (job.name === JOB_NAMES.auditRetention ? purgeExpiredExports(app) : runExport(app, exportIdOf(job))),
    };
  },
  schedules: () => [{ id: 'audit-retention', everyMs: RETENTION_EVERY_MS, jobName: JOB_NAMES.auditRetention }],
  async onFinalFailure(app, job, err) {
    if (job.name === JOB_NAMES.auditExport) await markExportFailed(app, exportIdOf(job), err.message);
  },
  reconcile: reconcileExports,
};
