// The user's own account: profile, changes to it, password change, and deletion.
import type { Knex } from 'knex';
import type { Context } from '../context';
import { BadRequestError, ConflictError, NotFoundError, UnauthorizedError, ValidationError } from '../errors';
import { recordEvent, type EventOrigin } from '../events/outbox';
import { listRoleNames } from '../authz/permissions';
import { enqueueEmailAfterCommit, writeEmail } from '../email/outbox';
import type { User } from '../models';
import type { Actor } from '../auth/actor';
import { confirmWithoutPassword, type PasswordlessProof } from '../auth/reauthentication';
import { revokeSessions } from '../auth/sessions';
import { listLinkedAccounts, unlinkAllAccounts, type MaskedTradingAccount } from '../trading-accounts/accounts';
import { listIdentities, type LinkedIdentity } from '../oauth/identities';
import { hashPassword, verifyPassword } from './passwords';
import { assertPasswordPolicy } from './password-policy';

export type ProfileUser = Pick<
  User,
  'id' | 'email' | 'email_verified' | 'name' | 'phone' | 'timezone' | 'locale' | 'avatar_url' | 'status' | 'mfa_enabled' | 'created_at'
>;

/** A user's own view of their account. */
export interface Profile {
  user: ProfileUser;
  roles: string[];
  /** Names of the effective permissions, each once, sorted. */
  permissions: string[];
  tradingAccounts: MaskedTradingAccount[];
  /** Linked sign-in identities (Google). */
  identities: LinkedIdentity[];
  /** False for accounts that sign in with Google only. */
  hasPassword: boolean;
}

export async function getProfile(app: Context, userId: string): Promise<Profile> {
  const user = await app
    .db('users')
    .where({ id: userId })
    .first(
      'id',
      'email',
      'email_verified',
      'name',
      'phone',
      'timezone',
      'locale',
      'avatar_url',
      'status',
      'mfa_enabled',
      'created_at',
      app.db.raw('password_hash IS NOT NULL AS has_password'),
    );
  if (!user) throw new NotFoundError('No such user.');
  const { has_password: hasPassword, ...profileUser } = user as typeof user & { has_password: boolean };
  const [roles, permissions, tradingAccounts, identities] = await Promise.all([
    listRoleNames(app.db, userId),
    app.permissions.get(userId),
    listLinkedAccounts(app.db, userId),
    listIdentities(app.db, userId),
  ]);
  return {
    user: profileUser,
    roles,
    permissions: [...new Set(permissions.map((p) => p.name))].sort(),
    tradingAccounts,
    identities,
    hasPassword,
  };
}

export type ProfileChanges = Partial<Pick<User, 'name' | 'timezone' | 'locale'> & Pick<User, 'phone' | 'avatar_url'>>;

export async function updateProfile(app: Context, userId: string, changes: ProfileChanges, origin: EventOrigin): Promise<Profile> {
  const fields = Object.keys(changes).sort();
  const values = { ...changes, ...(changes.name && { name: changes.name.trim() }) };
  await app.db.transaction(async (trx) => {
    await trx('users')
      .where({ id: userId })
      .update({ ...values, updated_at: trx.fn.now() });
    // Field names only: the values are personal data.
    await recordEvent(trx, { type: 'user.updated', userId, data: { fields } }, origin);
  });
  return getProfile(app, userId);
}

/**
 * Checks the account's password for an act of a signed-in user. Wrong passwords count per user
 * (the login limit), reserved before bcrypt runs and given back on success, so a stolen access
 * token is no faster a password oracle than the login endpoint.
 */
export async function confirmPassword(
  app: Context,
  user: { id: string; password_hash: string },
  password: string | undefined,
  code: string,
  detail: string,
): Promise<void> {
  const limiter = app.limits.passwordCheckPerUser;
  await limiter.hit(user.id);
  if (!password || !(await verifyPassword(password, user.password_hash))) throw new UnauthorizedError(detail, code);
  await limiter.refund(user.id);
}

/** How the owner confirms a sensitive act: the password, or for accounts without one, a passwordless proof. */
export interface OwnerProof extends PasswordlessProof {
  password?: string;
}

/**
 * The owner's confirmation of a sensitive act (deletion, email change): the account's password, or
 * for an account without one (Google only) a step-up token or a fresh sign-in. `act` completes
 * "…to <act>." in the refusal.
 */
export async function confirmOwner(
  app: Context,
  actor: Actor,
  user: { id: string; password_hash: string | null },
  proof: OwnerProof,
  act: string,
): Promise<void> {
  if (!user.password_hash) return confirmWithoutPassword(app, actor, proof, act);
  await confirmPassword(
    app,
    { id: user.id, password_hash: user.password_hash },
    proof.password,
    'invalid_credentials',
    'The password is incorrect.',
  );
}

/**
 * Soft delete: the row stays (anonymised) for the audit trail, the email is freed, every session
 * ends, trading accounts are unlinked and their credentials destroyed, MFA and Google links go.
 */
export async function deleteAccount(app: Context, actor: Actor, proof: OwnerProof, origin: EventOrigin): Promise<void> {
  const user = await app.db('users').where({ id: actor.userId }).first('id', 'password_hash');
  if (!user) throw new NotFoundError('No such user.');
  await confirmOwner(app, actor, user, proof, 'delete your account');
  await app.permissions.changing(
    app.db,
    async (trx) => {
      await revokeSessions(app, trx, { userId: user.id, reason: 'account_deleted', origin });
      await unlinkAllAccounts(trx, user.id, origin);
      await trx('mfa_backup_codes').where({ user_id: user.id }).del();
      await trx('auth_providers').where({ user_id: user.id }).del();
      await trx('email_verification_tokens').where({ user_id: user.id }).del();
      await trx('email_change_tokens').where({ user_id: user.id }).del();
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

export type PublicProfile = Pick<User, 'id' | 'name' | 'avatar_url' | 'created_at'>;

/**
 * From the read replica when there is one: another user's name and avatar may be a moment old (a
 * change or a deletion shows once the replica has replayed it). Never older than what the reader
 * knows, though: the owner's own profile is read on the primary (their change shows at once, as on
 * GET /v1/users/me), and so is a user the replica does not have yet (just registered), so lag never
 * turns an existing user into a 404.
 */
export async function publicProfile(app: Context, userId: string, readerId: string): Promise<PublicProfile> {
  const find = async (db: Knex): Promise<PublicProfile | undefined> =>
    db('users').where({ id: userId, kind: 'person' }).whereNot({ status: 'deleted' }).first('id', 'name', 'avatar_url', 'created_at');
  const user = (readerId !== userId && (await app.readReplica(find))) || (await find(app.db));
  if (!user) throw new NotFoundError('No such user.');
  return user;
}

export interface PasswordChange {
  currentPassword: string;
  newPassword: string;
  revokeOtherSessions: boolean;
}

/** Changing the password while signed in: other sessions stay unless the caller asks to end them. */
export async function changePassword(app: Context, actor: Actor, input: PasswordChange, origin: EventOrigin): Promise<void> {
  const user = await app.db('users').where({ id: actor.userId }).first('id', 'email', 'name', 'password_hash');
  if (!user) throw new UnauthorizedError();
  if (!user.password_hash) {
    throw new BadRequestError(
      'no_password',
      'This account signs in with Google and has no password; set one with the password reset flow.',
    );
  }
  const currentHash = user.password_hash;
  await confirmPassword(
    app,
    { id: user.id, password_hash: currentHash },
    input.currentPassword,
    'invalid_current_password',
    'The current password is incorrect.',
  );
  if (input.newPassword === input.currentPassword) {
    throw new ValidationError(
      [{ field: 'new_password', message: 'must differ from the current password' }],
      'The new password must differ from the current one.',
    );
  }
  assertPasswordPolicy(input.newPassword, 'new_password', { email: user.email, name: user.name }, app.config.password);
  const passwordHash = await hashPassword(input.newPassword, app.config.password.bcryptCost);

  const emailId = await app.db.transaction(async (trx) => {
    // Only over the hash we checked: a concurrent change wins once, the other is told so.
    const changed = await trx('users')
      .where({ id: user.id, password_hash: currentHash })
      .update({ password_hash: passwordHash, password_changed_at: trx.fn.now(), updated_at: trx.fn.now() });
    if (!changed) throw new ConflictError('The password was changed meanwhile; sign in again.', 'password_changed_concurrently');
    let revoked: string[] = [];
    if (input.revokeOtherSessions) {
      const others = await trx('sessions')
        .where({ user_id: user.id })
        .whereNull('revoked_at')
        .modify((q) => {
          if (actor.sessionId) q.whereNot('id', actor.sessionId);
        })
        .pluck('id');
      revoked = others.length
        ? await revokeSessions(app, trx, { userId: user.id, sessionIds: others, reason: 'password_change', origin })
        : [];
    }
    await recordEvent(trx, { type: 'password.changed', userId: user.id, data: { other_sessions_revoked: revoked.length > 0 } }, origin);
    return writeEmail(trx, app.kms, { template: 'password_changed', to: user.email, userId: user.id, params: { name: user.name } });
  });
  await enqueueEmailAfterCommit(app, emailId);
}
