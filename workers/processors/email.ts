// The email queue: sends email_messages rows, and reconciles rows whose job was lost (Redis data
// loss, a crash between commit and enqueue) by enqueueing them again under the same job id.
import type { Job } from 'bullmq';
import type { Context } from '../../shared/context';
import { enqueueEmail, JOB_NAMES } from '../../shared/queues';
import { markEmailFailed, sendEmailMessage, type Mailer } from '../../shared/email/sender';

// A row this old with no job has lost it; younger ones are probably still being enqueued.
const RECONCILE_AFTER_SECONDS = 60;

export function emailProcessor(app: Context, mailer: Mailer) {
  const deps = { db: app.db, kms: app.kms, mailer, logger: app.logger, appName: app.config.appName };
  return async (job: Job): Promise<unknown> => {
    if (job.name === JOB_NAMES.reconcile) return reconcileEmails(app);
    const { emailId } = job.data as { emailId: string };
    return sendEmailMessage(deps, emailId);
  };
}

export async function reconcileEmails(app: Context): Promise<{ requeued: number }> {
  const rows: { id: string }[] = await app
    .db('email_messages')
    .where({ status: 'pending' })
    .where('created_at', '<', app.db.raw(`now() - interval '${RECONCILE_AFTER_SECONDS} seconds'`))
    .orderBy('created_at')
    .limit(1000)
    .select('id');
  let requeued = 0;
  for (const { id } of rows) {
    const job = await app.queues.email.getJob(`email-${id}`);
    if (job && !(await job.isCompleted())) continue;
    // A completed job whose row is still pending died between sending and recording: the job id
    // must be freed before the retry can be added.
    if (job) await job.remove();
    await enqueueEmail(app.queues, id);
    requeued += 1;
  }
  return { requeued };
}

export async function onEmailJobFailed(app: Context, job: Job | undefined, err: Error): Promise<void> {
  if (!job || job.name !== JOB_NAMES.sendEmail) return;
  if (job.attemptsMade < (job.opts.attempts ?? 1)) return;
  await markEmailFailed(app.db, (job.data as { emailId: string }).emailId, err.message);
}
