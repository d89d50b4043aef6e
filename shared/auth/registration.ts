// Registration with a password, and email verification: a 256-bit single-use link, stored hashed,
// mailed through the email outbox. Asking for the link again does the same work for every address
// (shared/auth/address-requests.ts); the worker writes the new one here.
import type { Knex } from 'knex';
import type { Context } from '../context';
import { isUniqueViolation } from '../db';
import { hashOpaqueToken, newOpaqueToken } from '../crypto/access-tokens';
import { recordEvent, type EventOrigin } from '../events/outbox';
import { enqueueEmailAfterCommit, writeEmail } from '../email/outbox';
import { BadRequestError, ConflictError, ValidationError } from '../errors';
import { assertPasswordPolicy } from '../users/password-policy';
import { hashPassword } from '../users/passwords';
import { DEFAULT_ROLE, grantRole } from '../users/roles';
import { normalizeEmail } from '../users/email';

const VERIFICATION_TTL_HOURS = 24;
const INVALID_LINK = 'The verification link is invalid, used or expired. Ask for a new one.';

export interface Registration {
  email: string;
  password: string;
  name: string;
  phone?: string;
  timezone?: string;
  locale?: string;
}

const emailTaken = () => new ConflictError('An account with this email already exists.', 'email_taken');

export async function register(app: Context, input: Registration, origin: EventOrigin): Promise<{ userId: string; email: string }> {
  await app.limits.registerPerIp.hit(origin.ip ?? '-');
  const email = input.email.trim();
  const name = input.name.trim();
  if (!name) throw new ValidationError([{ field: 'name', message: 'must not be blank' }]);
  assertPasswordPolicy(input.password, 'password', { email, name }, app.config.password);
  // Hash outside the transaction: a quarter of a second that must not hold a connection.
  const passwordHash = await hashPassword(input.password, app.config.password.bcryptCost);
  const { userId, emailId } = await app.db.transaction(async (trx) => {
    if (
      await trx('users')
        .where({ email: normalizeEmail(email) })
        .first('id')
    )
      throw emailTaken();
    let row: { id: string };
    try {
      [row] = await trx('users')
        .insert({
          email,
          name,
          password_hash: passwordHash,
          password_changed_at: trx.fn.now(),
          phone: input.phone ?? null,
          timezone: input.timezone ?? 'UTC',
          locale: input.locale ?? 'en',
        })
        .returning('id');
    } catch (err) {
      // Two registrations of one email at once: the unique index decides.
      if (isUniqueViolation(err)) throw emailTaken();
      throw err;
    }
    await grantRole(trx, row.id, DEFAULT_ROLE);
    await recordEvent(trx, { type: 'user.registered', userId: row.id, data: { method: 'password' } }, { ...origin, actorId: row.id });
    const emailId = await writeVerification(app, trx, { id: row.id, email, name });
    return { userId: row.id, emailId };
  });
  await enqueueEmailAfterCommit(app, emailId);
  return { userId, email };
}

/** Stores a new verification token of the user and writes the email that carries it. */
async function writeVerification(app: Context, trx: Knex.Transaction, user: { id: string; email: string; name: string }): Promise<string> {
  const token = newOpaqueToken();
  await trx('email_verification_tokens').insert({
    token_hash: token.hash,
    user_id: user.id,
    expires_at: trx.raw(`now() + make_interval(hours => ?)`, [VERIFICATION_TTL_HOURS]),
  });
  return writeEmail(trx, app.kms, {
    template: 'verify_email',
    to: user.email,
    userId: user.id,
    params: {
      name: user.name,
      link: `${app.config.emailLinkBaseUrl}/verify-email?token=${encodeURIComponent(token.token)}`,
      expiresInHours: VERIFICATION_TTL_HOURS,
    },
  });
}

/** Spends a verification token: the account is active and its email verified. */
export async function verifyEmail(app: Context, token: string, origin: EventOrigin): Promise<void> {
  const hash = hashOpaqueToken(token);
  await app.db.transaction(async (trx) => {
    const [used] = await trx('email_verification_tokens')
      .where({ token_hash: hash })
      .whereNull('used_at')
      .where('expires_at', '>', trx.fn.now())
      .update({ used_at: trx.fn.now() })
      .returning('user_id');
    if (!used) throw new BadRequestError('invalid_token', INVALID_LINK);
    const userId = used.user_id;
    const user = await trx('users').where({ id: userId }).forUpdate().first('status', 'email_verified');
    if (!user || user.status === 'deleted' || user.status === 'suspended') throw new BadRequestError('invalid_token', INVALID_LINK);
    await trx('users')
      .where({ id: userId })
      .update({ email_verified: true, email_verified_at: trx.fn.now(), status: 'active', updated_at: trx.fn.now() });
    // Other links sent before this one are spent too.
    await trx('email_verification_tokens').where({ user_id: userId }).whereNull('used_at').update({ used_at: trx.fn.now() });
    if (!user.email_verified) await recordEvent(trx, { type: 'user.email_verified', userId, data: {} }, { ...origin, actorId: userId });
  });
}

/**
 * Runs in the worker for a resend request (shared/auth/address-requests.ts), in its transaction:
 * when an account with this address still waits for verification, replaces its unused links with
 * a new one and writes the email; otherwise writes nothing. Returns the email's id.
 */
export async function writeVerificationAgain(app: Context, trx: Knex.Transaction, address: string): Promise<string | null> {
  const user = await trx('users').where({ email: address, status: 'pending_verification' }).forUpdate().first('id', 'email', 'name');
  if (!user) return null;
  await trx('email_verification_tokens').where({ user_id: user.id }).whereNull('used_at').del();
  return writeVerification(app, trx, user);
}
