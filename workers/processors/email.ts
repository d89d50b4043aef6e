// The email queue: sends email_messages rows (one job per row, its id the row's), handles requests
// about an address (a reset link, the verification email again: the lookup happens here, never on
// the request path), records a failure once a job has used every attempt, and re-enqueues pending
// rows whose job was lost.
import type { Job } from 'bullmq';
import type { Knex } from 'knex';
import type { Context } from '../../shared/context';
import { enqueueAddressRequest, enqueueEmail, JOB_NAMES, jobIds } from '../../shared/queues';
import { requeueLostJobs } from '../../shared/queues/reconcile';
import { createMailer, markEmailFailed, sendEmailMessage } from '../../shared/email/sender';
import { handleAddressRequest, markAddressRequestFailed } from '../../shared/auth/address-requests';
import type { QueueDeclaration } from '../declaration';

/**
 * On the read replica when there is one: a lagging replica may still list a row already sent, and
 * the reconciler then enqueues it again, which is harmless: each job claims its row on the primary
 * (`status = 'pending'`, sendEmailMessage; FOR UPDATE, handleAddressRequest) and skips one that is
 * no longer pending. A row too new for the replica waits for the next run.
 */
const pendingIds = (app: Context, table: 'email_messages' | 'address_requests'): Promise<string[]> =>
  app.readReplica(async (db: Knex): Promise<string[]> =>
    db(table)
      .where({ status: 'pending' })
      .where('created_at', '<', db.raw(`now() - make_interval(secs => ?)`, [app.config.queues.reconcileAfterSeconds]))
      .orderBy('created_at')
      .limit(1000)
      .pluck('id'),
  );

export async function reconcileEmails(app: Context): Promise<{ requeued: number }> {
  const queue = app.queues.email;
  const emails = await requeueLostJobs({
    queue,
    pendingRowIds: await pendingIds(app, 'email_messages'),
    jobId: jobIds.email,
    enqueue: (id) => enqueueEmail(app.queues, id),
  });
  const requests = await requeueLostJobs({
    queue,
    pendingRowIds: await pendingIds(app, 'address_requests'),
    jobId: jobIds.addressRequest,
    enqueue: (id) => enqueueAddressRequest(app.queues, id),
  });
  return { requeued: emails.requeued + requests.requeued };
}

const isAddressRequest = (job: Job) => job.name === JOB_NAMES.addressRequest;

export const email: QueueDeclaration = {
  name: 'email',
  start(app) {
    const mailer = createMailer(app.config);
    const deps = { db: app.db, kms: app.kms, mailer, logger: app.logger, appName: app.config.appName };
    return {
      process: (job) =>
        isAddressRequest(job)
          ? handleAddressRequest(app, (job.data as { requestId: string }).requestId)
          : sendEmailMessage(deps, (job.data as { emailId: string }).emailId),
      close: () => mailer.transport.close(),
    };
  },
  async onFinalFailure(app, job, err) {
    if (isAddressRequest(job)) await markAddressRequestFailed(app.db, (job.data as { requestId: string }).requestId);
    else await markEmailFailed(app.db, (job.data as { emailId: string }).emailId, err.message);
  },
  reconcile: reconcileEmails,
};
