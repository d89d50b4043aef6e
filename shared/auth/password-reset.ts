// Password reset: a 256-bit single-use token, stored hashed in Redis for
// PASSWORD_RESET_TOKEN_TTL_MINUTES and mailed as a link built from EMAIL_LINK_BASE_URL. Asking for
// one does the same work for every address (shared/auth/address-requests.ts): the worker looks
// the address up and writes the email here. Completing the reset revokes every session and never
// signs in.
import type { Knex } from 'knex';
import type { Context } from '../context';
import { hashOpaqueToken, newOpaqueToken } from '../crypto/access-tokens';
import { recordEvent, type EventOrigin } from '../events/outbox';
import { enqueueEmailAfterCommit, writeEmail } from '../email/outbox';
import { BadRequestError } from '../errors';
import { hashPassword } from '../users/passwords';
import { assertPasswordPolicy } from '../users/password-policy';
import { canSignIn, SIGN_IN_STATUSES } from '../users/status';
import { revokeSessions } from './sessions';

const INVALID_TOKEN = 'The reset link is invalid, used or expired. Ask for a new one.';

/** Redis key of a reset token, by the token's hash (the token itself is never stored). */
export const passwordResetKey = (app: Context, tokenHash: string) => app.key('password-reset', tokenHash);

interface StoredReset {
  userId: string;
  /** The password the token was issued for: any later change (reset or change) spends every older token. */
  passwordChangedAt: string | null;
}

/**
 * Runs in the worker for a reset request (shared/auth/address-requests.ts), in its transaction:
 * when the address belongs to a person who may sign in, stores a token for the password they have
 * now and writes the email that carries it; otherwise writes nothing. Returns the email's id.
 */
export async function writePasswordResetEmail(
  app: Context,
  trx: Knex.Transaction,
  address: string,
  origin: EventOrigin,
): Promise<string | null> {
  const user = await trx('users')
    .where({ email: address, kind: 'person' })
    .whereIn('status', SIGN_IN_STATUSES)
    .first('id', 'email', 'name', 'password_changed_at');
  if (!user) return null;
  const ttlSeconds = app.config.password.resetTokenTtlSeconds;
  const token = newOpaqueToken();
  const stored: StoredReset = {
    userId: user.id,
    passwordChangedAt: user.password_changed_at ? new Date(user.password_changed_at).toISOString() : null,
  };
  // Before the commit: the emailed link must find its token however fast the email goes out.
  await app.redis.set(passwordResetKey(app, token.hash), JSON.stringify(stored), 'EX', ttlSeconds);
  // The actor is the user, or the admin who sent the link for them (POST /v1/admin/users/{id}/password-reset).
  await recordEvent(
    trx,
    { type: 'password.reset_requested', userId: user.id, data: {} },
    { ...origin, actorId: origin.actorId ?? user.id },
  );
  return writeEmail(trx, app.kms, {
    template: 'password_reset',
    to: user.email,
    userId: user.id,
    params: {
      name: user.name,
      link: `${app.config.emailLinkBaseUrl}/reset-password?token=${encodeURIComponent(token.token)}`,
      expiresInMinutes: Math.max(1, Math.round(ttlSeconds / 60)),
    },
  });
}

/**
 * Sets a new password with a reset token. The token is read first so that a password refused by
 * the policy does not spend it, then taken with GETDEL: of two concurrent uses, one wins.
 */
export async function resetPassword(app: Context, token: string, newPassword: string, origin: EventOrigin): Promise<void> {
  const key = passwordResetKey(app, hashOpaqueToken(token));
  const peek = await app.redis.get(key);
  if (!peek) throw new BadRequestError('invalid_token', INVALID_TOKEN);
  const { userId } = JSON.parse(peek) as StoredReset;
  const user = await app.db('users').where({ id: userId }).first('id', 'email', 'name');
  if (!user) throw new BadRequestError('invalid_token', INVALID_TOKEN);
  assertPasswordPolicy(newPassword, 'new_password', { email: user.email, name: user.name }, app.config.password);
  // Hashed outside the transaction: a quarter of a second that must not hold a connection.
  const passwordHash = await hashPassword(newPassword, app.config.password.bcryptCost);
  const taken = await app.redis.getdel(key);
  if (!taken) throw new BadRequestError('invalid_token', INVALID_TOKEN);
  const stored = JSON.parse(taken) as StoredReset;

  const emailId = await app.db.transaction(async (trx) => {
    const row = await trx('users').where({ id: stored.userId }).forUpdate().first('id', 'email', 'name', 'status', 'password_changed_at');
    const changedAt = row?.password_changed_at ? new Date(row.password_changed_at).toISOString() : null;
    if (!row || !canSignIn(row.status) || changedAt !== stored.passwordChangedAt) throw new BadRequestError('invalid_token', INVALID_TOKEN);
    await trx('users')
      .where({ id: row.id })
      .update({ password_hash: passwordHash, password_changed_at: trx.fn.now(), updated_at: trx.fn.now() });
    const eventOrigin = { ...origin, actorId: origin.actorId ?? row.id };
    const revoked = await revokeSessions(app, trx, { userId: row.id, reason: 'password_reset', origin: eventOrigin });
    await recordEvent(
      trx,
      { type: 'password.reset_completed', userId: row.id, data: { sessions_revoked: revoked.length > 0 } },
      eventOrigin,
    );
    return writeEmail(trx, app.kms, { template: 'password_reset_completed', to: row.email, userId: row.id, params: { name: row.name } });
  });
  await enqueueEmailAfterCommit(app, emailId);
}
