// Requests about an email address whose answer must not tell whether the address has an account:
// a password reset link, and the verification email again (DESIGN.md, "Same work for every
// address"). The request path does the same work for any address: two rate limits, one row and
// its job, never a read of users. The worker then looks the address up and writes the email, or
// nothing. The address is envelope-encrypted in its row, and the row is deleted once handled.
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import type { Context } from '../context';
import type { EventOrigin } from '../events/outbox';
import { enqueueEmailAfterCommit } from '../email/outbox';
import type { AddressRequestKind } from '../models';
import { enqueueAddressRequest, enqueueAfterCommit } from '../queues';
import { normalizeEmail } from '../users/email';
import { writePasswordResetEmail } from './password-reset';
import { writeVerificationAgain } from './registration';

/** Associated data binding an encrypted address to its row. */
const addressContext = (requestId: string) => `address_requests.address:${requestId}`;

/** What the worker writes for each kind of request, in the request's transaction: an email's id, or null. */
const WRITERS: Record<
  AddressRequestKind,
  (app: Context, trx: Knex.Transaction, address: string, origin: EventOrigin) => Promise<string | null>
> = {
  password_reset: writePasswordResetEmail,
  verification_resend: (app, trx, address) => writeVerificationAgain(app, trx, address),
};

async function recordAddressRequest(app: Context, kind: AddressRequestKind, address: string, origin: EventOrigin): Promise<void> {
  const id = crypto.randomUUID();
  await app.db('address_requests').insert({
    id,
    kind,
    address_encrypted: app.kms.encrypt(address, addressContext(id)),
    ip: origin.ip ?? null,
    user_agent: origin.userAgent ?? null,
  });
  await enqueueAfterCommit(app.logger, () => enqueueAddressRequest(app.queues, id), { requestId: id });
}

/** Asks for a password reset link; counted per IP and per address, known or not. */
export async function requestPasswordReset(app: Context, email: string, origin: EventOrigin): Promise<void> {
  const address = normalizeEmail(email);
  await app.limits.passwordReset.ip.hit(origin.ip ?? '-');
  await app.limits.passwordReset.address.hit(address);
  await recordAddressRequest(app, 'password_reset', address, origin);
}

/** Asks for the verification email again; counted per IP and per address, known or not. */
export async function requestVerificationEmail(app: Context, email: string, origin: EventOrigin): Promise<void> {
  const address = normalizeEmail(email);
  await app.limits.verificationEmail.ip.hit(origin.ip ?? '-');
  await app.limits.verificationEmail.address.hit(address);
  await recordAddressRequest(app, 'verification_resend', address, origin);
}

/**
 * The worker's half: looks the address up and writes its email (or nothing), and deletes the
 * request, in one transaction; a request already handled is skipped, so a job that runs twice
 * writes one email.
 */
export async function handleAddressRequest(app: Context, requestId: string): Promise<'handled' | 'skipped'> {
  const emailId = await app.db.transaction(async (trx) => {
    const request = await trx('address_requests').where({ id: requestId, status: 'pending' }).forUpdate().first();
    if (!request) return undefined;
    const address = app.kms.decrypt(request.address_encrypted, addressContext(request.id));
    const origin = { ip: request.ip, userAgent: request.user_agent };
    const written = await WRITERS[request.kind](app, trx, address, origin);
    await trx('address_requests').where({ id: request.id }).del();
    return written;
  });
  if (emailId === undefined) return 'skipped';
  if (emailId) await enqueueEmailAfterCommit(app, emailId);
  return 'handled';
}

/** Marks a request failed once its job has used every attempt (it stays for inspection). */
export async function markAddressRequestFailed(db: Knex, requestId: string): Promise<void> {
  await db('address_requests').where({ id: requestId, status: 'pending' }).update({ status: 'failed' });
}
