// Email requests are rows written in the transaction that causes them, their parameters encrypted
// (they may hold one-time tokens). `enqueueEmail` after the commit sends at once; the reconciler
// re-enqueues any pending row that lost its job.
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import type { Kms } from '../crypto/kms';
import type { Context } from '../context';
import { enqueueAfterCommit, enqueueEmail } from '../queues';
import type { TemplateName, TemplateParams } from './templates';

/** Associated data binding the encrypted parameters to their row. */
export const emailContext = (emailId: string) => `email_messages.params:${emailId}`;

export async function writeEmail<T extends TemplateName>(
  trx: Knex.Transaction,
  kms: Kms,
  message: { template: T; to: string; userId?: string | null; params: TemplateParams[T] },
): Promise<string> {
  const id = crypto.randomUUID();
  await trx('email_messages').insert({
    id,
    user_id: message.userId ?? null,
    template: message.template,
    to_address: message.to,
    params_encrypted: kms.encrypt(JSON.stringify(message.params), emailContext(id)),
  });
  return id;
}

/** Enqueues a committed email; a queue outage leaves it to the reconciler rather than failing the request. */
export function enqueueEmailAfterCommit(app: Pick<Context, 'logger' | 'queues'>, emailId: string): Promise<void> {
  return enqueueAfterCommit(app.logger, () => enqueueEmail(app.queues, emailId), { emailId });
}
