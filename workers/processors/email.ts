// The email queue: sends email_messages rows (one job per row, its id the row's), marks a row
// failed once its job has used every attempt, and re-enqueues pending rows whose job was lost.
import type { Context } from '../../shared/context';
import { enqueueEmail, jobIds } from '../../shared/queues';
import { requeueLostJobs } from '../../shared/queues/reconcile';
import { createMailer, markEmailFailed, sendEmailMessage } from '../../shared/email/sender';
import type { QueueDeclaration } from '../declaration';

// A row this old with no job has lost it; younger ones are probably still being enqueued.
const RECONCILE_AFTER_SECONDS = 60;

export async function reconcileEmails(app: Context): Promise<{ requeued: number }> {
  const pendingRowIds = await app
    .db('email_messages')
    .where({ status: 'pending' })
    .where('created_at', '<', app.db.raw(`now() - make_interval(secs => ?)`, [RECONCILE_AFTER_SECONDS]))
    .orderBy('created_at')
    .limit(1000)
    .pluck('id');
  return requeueLostJobs({
    queue: app.queues.email,
    pendingRowIds,
    jobId: jobIds.email,
    enqueue: (id) => enqueueEmail(app.queues, id),
  });
}

export const email: QueueDeclaration = {
  name: 'email',
  start(app) {
    const mailer = createMailer(app.config);
    const deps = { db: app.db, kms: app.kms, mailer, logger: app.logger, appName: app.config.appName };
    return {
      process: (job) => sendEmailMessage(deps, (job.data as { emailId: string }).emailId),
      close: () => mailer.transport.close(),
    };
  },
  async onFinalFailure(app, job, err) {
    await markEmailFailed(app.db, (job.data as { emailId: string }).emailId, err.message);
  },
  reconcile: reconcileEmails,
};
