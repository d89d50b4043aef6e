// Changing one's password while signed in: the current password is required, the policy
// applies, and other sessions stay signed in unless the caller asks to end them.
import type { Context } from '../../shared/context';
import { recordEvent, type EventOrigin } from '../../shared/events/outbox';
import { writeEmail } from '../../shared/email/outbox';
import { BadRequestError, ConflictError, UnauthorizedError, ValidationError } from '../../shared/errors';
import { hashPassword, verifyPassword } from '../../shared/users/passwords';
import type { Limiter } from '../http/rate-limit';
import { assertPasswordPolicy } from '../auth/service';
import { enqueueAfterCommit, revokeSessions } from '../auth/sessions';

export interface ChangePassword {
  current_password: string;
  new_password: string;
  revoke_other_sessions?: boolean;
}

/**
 * Wrong current passwords count per user (the login limit), reserved before bcrypt runs and
 * given back on success, so a stolen access token is no faster a password oracle than login.
 */
export async function changePassword(
  app: Context,
  principal: { userId: string; sessionId: string | null },
  input: ChangePassword,
  origin: EventOrigin,
  limiter: Limiter,
): Promise<void> {
  const user = await app.db('users').where({ id: principal.userId }).first('id', 'email', 'name', 'password_hash');
  if (!user) throw new UnauthorizedError();
  if (!user.password_hash) {
    throw new BadRequestError('no_password', 'This account signs in with Google and has no password; set one with the password reset flow.');
  }
  await limiter.hit(user.id);
  if (!(await verifyPassword(input.current_password, user.password_hash))) {
    throw new UnauthorizedError('The current password is incorrect.', 'invalid_current_password');
  }
  await limiter.refund(user.id);
  if (input.new_password === input.current_password) {
    throw new ValidationError([{ field: 'new_password', message: 'must differ from the current password' }], 'The new password must differ from the current one.');
  }
  assertPasswordPolicy(app, input.new_password, 'new_password', { email: user.email, name: user.name });
  const passwordHash = await hashPassword(input.new_password, app.config.password.bcryptCost);

  const emailId = await app.db.transaction(async (trx) => {
    // Only over the hash we checked: a concurrent change wins once, the other is told so.
    const changed = await trx('users')
      .where({ id: user.id, password_hash: user.password_hash })
      .update({ password_hash: passwordHash, password_changed_at: trx.fn.now(), updated_at: trx.fn.now() });
    if (!changed) throw new ConflictError('The password was changed meanwhile; sign in again.', 'password_changed_concurrently');
    let revoked: string[] = [];
    if (input.revoke_other_sessions) {
      const others: string[] = await trx('sessions')
        .where({ user_id: user.id })
        .whereNull('revoked_at')
        .modify((q) => { if (principal.sessionId) q.whereNot('id', principal.sessionId); })
        .pluck('id');
      revoked = others.length ? await revokeSessions(trx, { userId: user.id, sessionIds: others, reason: 'password_change', origin }) : [];
    }
    await recordEvent(trx, { type: 'password.changed', userId: user.id, data: { other_sessions_revoked: revoked.length } }, origin);
    return writeEmail(trx, app.kms, { template: 'password_changed', to: user.email, userId: user.id, params: { name: user.name } });
  });
  await enqueueAfterCommit(app, emailId);
}
