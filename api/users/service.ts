// The user's own account: profile, changes to it, password change, and deletion.
import type { Context } from '../../shared/context';
import { BadRequestError, ConflictError, ForbiddenError, NotFoundError, UnauthorizedError, ValidationError } from '../../shared/errors';
import { recordEvent, type EventOrigin } from '../../shared/events/outbox';
import { listRoleNames } from '../../shared/authz/permissions';
import { hashPassword, verifyPassword } from '../../shared/users/passwords';
import { writeEmail } from '../../shared/email/outbox';
import type { Limiter } from '../http/rate-limit';
import { assertPasswordPolicy } from '../../shared/users/password-policy';
import type { Principal } from '../http/state';
import { enqueueAfterCommit, revokeSessions } from '../auth/sessions';
import { signedInRecently } from '../auth/authenticate';
import { checkVerificationToken } from '../mfa/service';

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export async function getMe(app: Context, userId: string) {
  const user = await app.db('users').where({ id: userId }).first();
  if (!user) throw new NotFoundError('No such user.');
  const [roles, permissions, accounts] = await Promise.all([
    listRoleNames(app.db, userId),
    app.permissions.get(userId),
    app
      .db('trading_accounts')
      .where({ user_id: userId })
      .whereNull('unlinked_at')
      .orderBy('created_at', 'desc')
      .select('id', 'broker', 'nickname', 'status', 'broker_user_id', 'api_key_masked', 'preferences', 'last_verified_at', 'created_at'),
  ]);
  return {
    id: user.id,
    email: user.email,
    email_verified: user.email_verified,
    name: user.name,
    phone: user.phone,
    timezone: user.timezone,
    locale: user.locale,
    avatar_url: user.avatar_url,
    status: user.status,
    mfa_enabled: user.mfa_enabled,
    roles,
    permissions: [...new Set(permissions.map((p) => p.name))].sort(),
    // Masked: never a credential.
    trading_accounts: accounts.map((a: Record<string, any>) => ({
      ...a,
      last_verified_at: iso(a.last_verified_at),
      created_at: a.created_at.toISOString(),
    })),
    created_at: user.created_at.toISOString(),
  };
}

export type ProfileChanges = Partial<Record<'name' | 'phone' | 'timezone' | 'locale' | 'avatar_url', string | null>>;

export async function updateMe(app: Context, userId: string, changes: ProfileChanges, origin: EventOrigin) {
  const fields = Object.keys(changes).sort();
  const values = { ...changes, ...(changes.name && { name: changes.name.trim() }) };
  await app.db.transaction(async (trx) => {
    await trx('users')
      .where({ id: userId })
      .update({ ...values, updated_at: trx.fn.now() });
    // Field names only: the values are personal data.
    await recordEvent(trx, { type: 'user.updated', userId, data: { fields } }, origin);
  });
  return getMe(app, userId);
}

/**
 * Soft delete: the row stays (anonymised) for the audit trail, the email is freed, every session
 * ends, trading accounts are unlinked and their credentials destroyed, MFA and Google links go.
 */
/**
 * Checks the account's password for an act of a signed-in user. Wrong passwords count per user
 * (the login limit), reserved before bcrypt runs and given back on success, so a stolen access
 * token is no faster a password oracle than the login endpoint.
 */
async function confirmPassword(
  limiter: Limiter,
  user: { id: string; password_hash: string },
  password: string | undefined,
  code: string,
  detail: string,
): Promise<void> {
  await limiter.hit(user.id);
  if (!password || !(await verifyPassword(password, user.password_hash))) throw new UnauthorizedError(detail, code);
  await limiter.refund(user.id);
}

export async function deleteMe(
  app: Context,
  principal: Principal,
  proof: { password?: string; verificationToken?: string },
  origin: EventOrigin,
  limiter: Limiter,
): Promise<void> {
  const user = await app.db('users').where({ id: principal.userId }).first('id', 'password_hash');
  if (!user) throw new NotFoundError('No such user.');
  if (user.password_hash) {
    await confirmPassword(limiter, user, proof.password, 'invalid_credentials', 'The password is incorrect.');
  } else {
    // Users without a password (Google only) confirm with a step-up token or a recent sign-in.
    if (!signedInRecently(principal) && !(await checkVerificationToken(app, principal, proof.verificationToken))) {
      throw new ForbiddenError(
        'Confirm with an X-Verification-Token, or sign in again (within the last 5 minutes), to delete your account.',
        'reauthentication_required',
      );
    }
  }
  await app.permissions.changing(
    app.db,
    async (trx) => {
      await revokeSessions(app, trx, { userId: user.id, reason: 'account_deleted', origin });
      const accounts = await trx('trading_accounts')
        .where({ user_id: user.id })
        .whereNull('unlinked_at')
        .update({ unlinked_at: trx.fn.now(), credentials_encrypted: null, pending_credentials_encrypted: null, updated_at: trx.fn.now() })
        .returning(['id', 'broker']);
      for (const account of accounts) {
        await recordEvent(
          trx,
          { type: 'trading_account.unlinked', userId: user.id, data: { account_id: account.id, broker: account.broker } },
          origin,
        );
      }
      await trx('mfa_backup_codes').where({ user_id: user.id }).del();
      await trx('auth_providers').where({ user_id: user.id }).del();
      await trx('email_verification_tokens').where({ user_id: user.id }).del();
      await trx('email_messages').where({ user_id: user.id, status: 'pending' }).update({ status: 'cancelled' });
      await trx('email_messages').where({ user_id: user.id }).update({ to_address: null });
      await trx('users')
        .where({ id: user.id })
        .update({
          status: 'deleted',
          deleted_at: trx.fn.now(),
          updated_at: trx.fn.now(),
          email: `deleted+${user.id}@deleted.invalid`,
          email_verified: false,
          name: 'Deleted user',
          phone: null,
          avatar_url: null,
          password_hash: null,
          mfa_enabled: false,
          mfa_secret_encrypted: null,
          mfa_last_used_step: null,
        });
      await recordEvent(trx, { type: 'user.deleted', userId: user.id, data: {} }, origin);
    },
    () => user.id,
  );
}

export async function publicProfile(app: Context, userId: string) {
  const user = await app
    .db('users')
    .where({ id: userId, kind: 'person' })
    .whereNot({ status: 'deleted' })
    .first('id', 'name', 'avatar_url', 'created_at');
  if (!user) throw new NotFoundError('No such user.');
  return { id: user.id, name: user.name, avatar_url: user.avatar_url, created_at: user.created_at.toISOString() };
}

export interface ChangePassword {
  current_password: string;
  new_password: string;
  revoke_other_sessions?: boolean;
}

/** Changing the password while signed in: other sessions stay unless the caller asks to end them. */
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
    throw new BadRequestError(
      'no_password',
      'This account signs in with Google and has no password; set one with the password reset flow.',
    );
  }
  await confirmPassword(limiter, user, input.current_password, 'invalid_current_password', 'The current password is incorrect.');
  if (input.new_password === input.current_password) {
    throw new ValidationError(
      [{ field: 'new_password', message: 'must differ from the current password' }],
      'The new password must differ from the current one.',
    );
  }
  assertPasswordPolicy(input.new_password, 'new_password', { email: user.email, name: user.name }, app.config.password);
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
        .modify((q) => {
          if (principal.sessionId) q.whereNot('id', principal.sessionId);
        })
        .pluck('id');
      revoked = others.length
        ? await revokeSessions(app, trx, { userId: user.id, sessionIds: others, reason: 'password_change', origin })
        : [];
    }
    await recordEvent(trx, { type: 'password.changed', userId: user.id, data: { other_sessions_revoked: revoked.length > 0 } }, origin);
    return writeEmail(trx, app.kms, { template: 'password_changed', to: user.email, userId: user.id, params: { name: user.name } });
  });
  await enqueueAfterCommit(app, emailId);
}
