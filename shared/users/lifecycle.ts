// What support does to an account (POST/DELETE under /v1/admin/users/{id}): suspend and
// reactivate, reset MFA for a user who lost their device, end sessions, give and take roles,
// unlock sign-in, mark the email verified, send a password reset link. Every act records its
// event with the admin as actor (the origin's actorId). The last active admin can be neither
// suspended nor demoted, and an admin cannot suspend or demote themselves: every act that can
// shrink the set of active admins takes one advisory lock, so two admins demoting each other at
// once cannot both succeed.
import type { Knex } from 'knex';
import type { Context } from '../context';
import { ConflictError, NotFoundError, ValidationError } from '../errors';
import { recordEvent, type EventOrigin } from '../events/outbox';
import { enqueueEmailAfterCommit, writeEmail } from '../email/outbox';
import type { UserStatus } from '../models';
import type { Actor } from '../auth/actor';
import { revokeSessions } from '../auth/sessions';
import { writePasswordResetEmail } from '../auth/password-reset';
import { listRoleNames } from '../authz/permissions';
import { canSignIn } from './status';
import { normalizeEmail } from './email';
import { grantRole } from './roles';

/** Codes, never free text: events and logs carry these only. */
export const SUSPENSION_REASONS = ['fraud_suspected', 'compliance_hold', 'user_request', 'security_incident', 'other'] as const;
export type SuspensionReason = (typeof SUSPENSION_REASONS)[number];

export const ADMIN_ROLE = 'admin';

/** Who acts and from where: the admin, in their session. */
export interface AdminAct {
  actor: Actor;
  origin: EventOrigin;
}

interface Target {
  id: string;
  email: string;
  name: string;
  status: UserStatus;
  email_verified: boolean;
  mfa_enabled: boolean;
}

/** The account acted on, locked for the transaction; people only, and not deleted. */
async function lockTarget(trx: Knex.Transaction, userId: string): Promise<Target> {
  const user = await trx('users')
    .where({ id: userId, kind: 'person' })
    .whereNot({ status: 'deleted' })
    .forUpdate()
    .first('id', 'email', 'name', 'status', 'email_verified', 'mfa_enabled');
  if (!user) throw new NotFoundError('No such user.');
  return user;
}

/** Serialises every act that can leave no active admin. */
async function lockAdminRoster(trx: Knex.Transaction): Promise<void> {
  await trx.raw(`SELECT pg_advisory_xact_lock(hashtext('user-service:admin-roster'))`);
}

/** Refuses an act that would leave no active admin (an `active` person holding the admin role). */
async function assertNotLastAdmin(trx: Knex.Transaction, target: Target): Promise<void> {
  if (target.status !== 'active') return;
  const admins = await trx('users as u')
    .join('user_roles as ur', 'ur.user_id', 'u.id')
    .join('roles as r', 'r.id', 'ur.role_id')
    .where({ 'r.name': ADMIN_ROLE, 'u.status': 'active', 'u.kind': 'person' })
    .pluck('u.id');
  if (admins.includes(target.id) && admins.length === 1) {
    throw new ConflictError('This is the last active admin; make another admin first.', 'last_admin');
  }
}

function refuseSelf(act: AdminAct, userId: string, what: string): void {
  if (act.actor.userId === userId) throw new ConflictError(`An admin cannot ${what} themselves; ask another admin.`, 'self_action');
}

export interface StatusChange {
  id: string;
  status: UserStatus;
}

/**
 * Suspends an account: it cannot sign in, refresh or hold permissions, and every session ends at
 * once (`session.revoked`, reason `admin`). Suspending a suspended account changes nothing.
 */
export async function suspendUser(app: Context, act: AdminAct, userId: string, reasonCode: SuspensionReason): Promise<StatusChange> {
  refuseSelf(act, userId, 'suspend');
  return app.permissions.changing(
    app.db,
    async (trx) => {
      await lockAdminRoster(trx);
      const user = await lockTarget(trx, userId);
      if (user.status === 'suspended') return { id: user.id, status: user.status };
      await assertNotLastAdmin(trx, user);
      await trx('users').where({ id: user.id }).update({ status: 'suspended', updated_at: trx.fn.now() });
      await revokeSessions(app, trx, { userId: user.id, reason: 'admin', origin: act.origin });
      await recordEvent(trx, { type: 'user.suspended', userId: user.id, data: { reason_code: reasonCode } }, act.origin);
      return { id: user.id, status: 'suspended' as const };
    },
    (change) => change.id,
  );
}

/** Lifts a suspension: back to `active`, or to `pending_verification` when the email is not verified. */
export async function reactivateUser(app: Context, act: AdminAct, userId: string): Promise<StatusChange> {
  return app.permissions.changing(
    app.db,
    async (trx) => {
      const user = await lockTarget(trx, userId);
      if (user.status !== 'suspended') return { id: user.id, status: user.status };
      const status: UserStatus = user.email_verified ? 'active' : 'pending_verification';
      await trx('users').where({ id: user.id }).update({ status, updated_at: trx.fn.now() });
      await recordEvent(trx, { type: 'user.reactivated', userId: user.id, data: {} }, act.origin);
      return { id: user.id, status };
    },
    (change) => change.id,
  );
}

/**
 * For a user who lost their authenticator: the TOTP secret and backup codes go, every session
 * ends, and the user is told by email. They sign in with the password alone and set MFA up again.
 */
export async function resetMfa(app: Context, act: AdminAct, userId: string): Promise<void> {
  const emailId = await app.db.transaction(async (trx) => {
    const user = await lockTarget(trx, userId);
    if (!user.mfa_enabled) throw new ConflictError('MFA is not enabled for this account.', 'mfa_not_enabled');
    await trx('users').where({ id: user.id }).update({
      mfa_enabled: false,
      mfa_secret_encrypted: null,
      mfa_enabled_at: null,
      mfa_last_used_step: null,
      updated_at: trx.fn.now(),
    });
    await trx('mfa_backup_codes').where({ user_id: user.id }).del();
    await revokeSessions(app, trx, { userId: user.id, reason: 'admin', origin: act.origin });
    await recordEvent(trx, { type: 'mfa.disabled', userId: user.id, data: { by_admin: true } }, act.origin);
    return writeEmail(trx, app.kms, { template: 'mfa_reset_by_admin', to: user.email, userId: user.id, params: { name: user.name } });
  });
  await enqueueEmailAfterCommit(app, emailId);
}

/** Ends one live session of the user (404 when there is none such), or all of them. */
export async function revokeUserSessions(app: Context, act: AdminAct, userId: string, sessionId?: string): Promise<number> {
  const revoked = await app.db.transaction(async (trx) => {
    await lockTarget(trx, userId);
    return revokeSessions(app, trx, { userId, ...(sessionId && { sessionIds: [sessionId] }), reason: 'admin', origin: act.origin });
  });
  if (sessionId && !revoked.length) throw new NotFoundError('No such live session of this user.');
  return revoked.length;
}

/** Roles an admin may give a person (`service` belongs to service principals only). */
async function assignableRole(trx: Knex.Transaction, role: string, field: string): Promise<string> {
  const found = await trx('roles').where({ name: role }).whereNot({ name: 'service' }).first('id');
  if (found) return found.id;
  const names = await trx('roles').whereNot({ name: 'service' }).orderBy('name').pluck('name');
  throw new ValidationError([{ field, message: `must be one of: ${names.join(', ')}` }]);
}

/** Gives a role; the user's cached permissions are invalidated before the answer. Returns their roles. */
export async function assignRole(app: Context, act: AdminAct, userId: string, role: string): Promise<string[]> {
  return (
    await app.permissions.changing(
      app.db,
      async (trx) => {
        const user = await lockTarget(trx, userId);
        const roleId = await assignableRole(trx, role, 'role');
        // The user's row is locked: two assignments of one role queue, and the second finds it held.
        const held = await trx('user_roles').where({ user_id: user.id, role_id: roleId }).first('user_id');
        if (!held) {
          await grantRole(trx, user.id, role);
          await recordEvent(trx, { type: 'role.assigned', userId: user.id, data: { role, via: 'admin' } }, act.origin);
        }
        return { userId: user.id, roles: await listRoleNames(trx, user.id) };
      },
      (result) => result.userId,
    )
  ).roles;
}

/** Takes a role away (404 when the user does not hold it); never the admin role of oneself or of the last admin. */
export async function removeRole(app: Context, act: AdminAct, userId: string, role: string): Promise<void> {
  if (role === ADMIN_ROLE) refuseSelf(act, userId, 'remove the admin role from');
  await app.permissions.changing(
    app.db,
    async (trx) => {
      if (role === ADMIN_ROLE) await lockAdminRoster(trx);
      const user = await lockTarget(trx, userId);
      const roleId = await assignableRole(trx, role, 'params.role');
      if (role === ADMIN_ROLE) await assertNotLastAdmin(trx, user);
      const removed = await trx('user_roles').where({ user_id: user.id, role_id: roleId }).del();
      if (!removed) throw new NotFoundError(`The user does not hold the ${role} role.`, 'role_not_held');
      await recordEvent(trx, { type: 'role.removed', userId: user.id, data: { role, via: 'admin' } }, act.origin);
      return user.id;
    },
    (id) => id,
  );
}

/**
 * Clears what locks the account out of signing in: failed sign-ins by its address (alone and from
 * every IP), wrong MFA codes at sign-in, and wrong passwords of its signed-in acts. Per-IP caps are
 * not the account's and stay.
 */
export async function unlockUser(app: Context, act: AdminAct, userId: string): Promise<void> {
  const user = await app.db('users').where({ id: userId, kind: 'person' }).whereNot({ status: 'deleted' }).first('id', 'email');
  if (!user) throw new NotFoundError('No such user.');
  const address = normalizeEmail(user.email);
  const { login, mfaPerAccount, passwordCheckPerUser } = app.limits;
  await Promise.all([
    login.email.reset(address),
    login.pair.resetStartingWith(address),
    mfaPerAccount.reset(user.id),
    passwordCheckPerUser.reset(user.id),
  ]);
  await app.db.transaction((trx) => recordEvent(trx, { type: 'user.unlocked', userId: user.id, data: {} }, act.origin));
}

/**
 * Marks the email verified (support checked it another way): a `pending_verification` account
 * becomes `active` and its outstanding verification links are spent. Nothing changes when it was
 * verified already.
 */
export async function markEmailVerified(app: Context, act: AdminAct, userId: string): Promise<StatusChange> {
  return app.db.transaction(async (trx) => {
    const user = await lockTarget(trx, userId);
    if (user.email_verified) return { id: user.id, status: user.status };
    const status: UserStatus = user.status === 'pending_verification' ? 'active' : user.status;
    await trx('users')
      .where({ id: user.id })
      .update({ email_verified: true, email_verified_at: trx.fn.now(), status, updated_at: trx.fn.now() });
    await trx('email_verification_tokens').where({ user_id: user.id }).whereNull('used_at').update({ used_at: trx.fn.now() });
    await recordEvent(trx, { type: 'user.email_verified', userId: user.id, data: { by_admin: true } }, act.origin);
    return { id: user.id, status };
  });
}

/** Sends the user the password reset email (the same link as a reset request); 409 for an account that cannot sign in. */
export async function sendPasswordReset(app: Context, act: AdminAct, userId: string): Promise<void> {
  const emailId = await app.db.transaction(async (trx) => {
    const user = await lockTarget(trx, userId);
    if (!canSignIn(user.status)) throw new ConflictError('This account cannot sign in (suspended); reactivate it first.', 'cannot_sign_in');
    return writePasswordResetEmail(app, trx, normalizeEmail(user.email), act.origin);
  });
  if (emailId) await enqueueEmailAfterCommit(app, emailId);
}
