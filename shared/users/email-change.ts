// A user changes their email address: the request (password, or for accounts without one a
// step-up token or a fresh sign-in) mails a single-use link to the new address and a notice to the
// old one; the link, used by the signed-in user, switches the address, marks it verified and ends
// the other sessions. The token is stored hashed in PostgreSQL, beside the email row that carries
// it. The address is checked free at both steps, the second time by the unique index itself, so
// an account registering it in between wins and the change gets 409. Events carry no address.
import type { Context } from '../context';
import { isUniqueViolation } from '../db';
import { BadRequestError, ConflictError, NotFoundError, ValidationError } from '../errors';
import { recordEvent, type EventOrigin } from '../events/outbox';
import { enqueueEmailAfterCommit, writeEmail } from '../email/outbox';
import { hashOpaqueToken, newOpaqueToken } from '../crypto/access-tokens';
import type { Actor } from '../auth/actor';
import type { PasswordlessProof } from '../auth/reauthentication';
import { revokeSessions } from '../auth/sessions';
import { confirmOwner } from './account';
import { normalizeEmail } from './email';
import { canSignIn } from './status';

export const EMAIL_CHANGE_TTL_HOURS = 24;

const INVALID_LINK = 'The email change link is invalid, used or expired. Ask for a new one.';
const TAKEN = 'Another account uses this email address.';

/** The new address, and the password or, for accounts without one, a passwordless proof. */
export interface EmailChangeRequest extends PasswordlessProof {
  newEmail: string;
  password?: string;
}

async function addressTaken(app: Pick<Context, 'db'>, address: string, userId: string): Promise<boolean> {
  return !!(await app.db('users').where({ email: address }).whereNot({ id: userId }).first('id'));
}

export async function requestEmailChange(app: Context, actor: Actor, input: EmailChangeRequest, origin: EventOrigin): Promise<void> {
  const user = await app.db('users').where({ id: actor.userId }).first('id', 'email', 'name', 'password_hash', 'status');
  if (!user || !canSignIn(user.status)) throw new NotFoundError('No such user.');
  await confirmOwner(app, actor, user, input, 'change your email address');
  const newEmail = input.newEmail.trim();
  if (normalizeEmail(newEmail) === normalizeEmail(user.email)) {
    throw new ValidationError([{ field: 'new_email', message: 'is already the address of this account' }]);
  }
  if (await addressTaken(app, newEmail, user.id)) throw new ConflictError(TAKEN, 'email_taken');
  // Each request mails an address the user typed: the limit of emails to one address holds here too.
  await app.limits.verificationEmail.address.hit(normalizeEmail(newEmail));

  const token = newOpaqueToken();
  const emailIds = await app.db.transaction(async (trx) => {
    // A new request replaces the links of earlier ones.
    await trx('email_change_tokens').where({ user_id: user.id }).whereNull('used_at').del();
    await trx('email_change_tokens').insert({
      token_hash: token.hash,
      user_id: user.id,
      new_email: newEmail,
      expires_at: trx.raw(`now() + make_interval(hours => ?)`, [EMAIL_CHANGE_TTL_HOURS]),
    });
    await recordEvent(trx, { type: 'user.email_change_requested', userId: user.id, data: {} }, origin);
    const link = await writeEmail(trx, app.kms, {
      template: 'email_change_confirm',
      to: newEmail,
      userId: user.id,
      params: {
        name: user.name,
        link: `${app.config.emailLinkBaseUrl}/confirm-email-change?token=${encodeURIComponent(token.token)}`,
        expiresInHours: EMAIL_CHANGE_TTL_HOURS,
      },
    });
    const notice = await writeEmail(trx, app.kms, {
      template: 'email_change_requested',
      to: user.email,
      userId: user.id,
      params: { name: user.name },
    });
    return [link, notice];
  });
  for (const id of emailIds) await enqueueEmailAfterCommit(app, id);
}

/**
 * Uses a link: the signed-in user's address becomes the new one, verified, and every other session
 * of theirs ends (`session.revoked`, reason `email_change`). A linked Google identity stays: it is
 * bound to the Google account's `sub`, not to the address.
 */
export async function confirmEmailChange(app: Context, actor: Actor, token: string, origin: EventOrigin): Promise<{ email: string }> {
  try {
    return await app.db.transaction(async (trx) => {
      const [used] = await trx('email_change_tokens')
        .where({ token_hash: hashOpaqueToken(token), user_id: actor.userId })
        .whereNull('used_at')
        .where('expires_at', '>', trx.fn.now())
        .update({ used_at: trx.fn.now() })
        .returning('new_email');
      if (!used) throw new BadRequestError('invalid_token', INVALID_LINK);
      const user = await trx('users').where({ id: actor.userId }).forUpdate().first('id', 'status');
      if (!user || !canSignIn(user.status)) throw new BadRequestError('invalid_token', INVALID_LINK);
      // The unique index decides: an account that took the address since the request wins.
      await trx('users').where({ id: user.id }).update({
        email: used.new_email,
        email_verified: true,
        email_verified_at: trx.fn.now(),
        status: 'active',
        updated_at: trx.fn.now(),
      });
      // Links to the old address (verification) are spent; other change links (to other addresses) go.
      await trx('email_verification_tokens').where({ user_id: user.id }).whereNull('used_at').update({ used_at: trx.fn.now() });
      await trx('email_change_tokens').where({ user_id: user.id }).whereNull('used_at').del();
      const others = await trx('sessions')
        .where({ user_id: user.id })
        .whereNull('revoked_at')
        .modify((q) => {
          if (actor.sessionId) q.whereNot('id', actor.sessionId);
        })
        .pluck('id');
      if (others.length) await revokeSessions(app, trx, { userId: user.id, sessionIds: others, reason: 'email_change', origin });
      await recordEvent(trx, { type: 'user.email_changed', userId: user.id, data: {} }, origin);
      return { email: used.new_email };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw new ConflictError(TAKEN, 'email_taken');
    throw err;
  }
}
