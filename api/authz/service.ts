// Authorization: the permission check (from the cache), listing, and direct grants that may expire.
import type { Context } from '../../shared/context';
import { BadRequestError, ForbiddenError, NotFoundError, ValidationError } from '../../shared/errors';
import { recordEvent, type EventOrigin } from '../../shared/events/outbox';
import type { Principal } from '../http/state';
import { callerHolds, callerPermissions } from '../auth/authenticate';

const isLiveUser = async (app: Context, userId: string) =>
  !!(await app.db('users').where({ id: userId }).whereNot({ status: 'deleted' }).first('id'));

/** Whose permissions a caller may look at: their own, or anyone's with `authz:check_any`. */
async function subjectFor(app: Context, caller: Principal, userId: string | undefined): Promise<string> {
  if (!userId || userId === caller.userId) return caller.userId;
  if (!(await callerHolds(app, caller, 'authz:check_any')))
    throw new ForbiddenError('Checking another user needs the authz:check_any permission.');
  if (!(await isLiveUser(app, userId))) throw new NotFoundError('No such user.');
  return userId;
}

const permissionsOf = (app: Context, caller: Principal, subject: string) =>
  subject === caller.userId ? callerPermissions(app, caller) : app.permissions.get(subject);

/** May `userId` (the caller, or another user whose check the caller may ask for) do `permission`? */
export async function check(app: Context, caller: Principal, userId: string | undefined, permission: string) {
  const subject = await subjectFor(app, caller, userId);
  const allowed = (await permissionsOf(app, caller, subject)).some((p) => p.name === permission);
  return { allowed, permission, user_id: subject };
}

export async function listPermissions(app: Context, caller: Principal, userId: string | undefined) {
  const permissions = await permissionsOf(app, caller, await subjectFor(app, caller, userId));
  return permissions.map((p) => ({
    name: p.name,
    source: p.source,
    id: p.grant_id,
    expires_at: p.expires_at ? p.expires_at.toISOString() : null,
  }));
}

export async function grantPermission(
  app: Context,
  adminId: string,
  input: { user_id: string; permission: string; expires_at?: string },
  origin: EventOrigin,
) {
  const expiresAt = input.expires_at ? new Date(input.expires_at) : null;
  if (expiresAt && expiresAt.getTime() <= Date.now())
    throw new ValidationError([{ field: 'expires_at', message: 'must be in the future' }]);
  const grant = await app.permissions.changing(
    app.db,
    async (trx) => {
      const permission = await trx('permissions').where({ name: input.permission }).first('id', 'name');
      if (!permission) throw new BadRequestError('unknown_permission', `There is no permission "${input.permission}".`);
      const user = await trx('users').where({ id: input.user_id }).whereNot({ status: 'deleted' }).first('id');
      if (!user) throw new NotFoundError('No such user.');
      // Granting a permission the user already holds directly replaces that grant's expiry.
      const [row] = await trx('user_permissions')
        .insert({ user_id: user.id, permission_id: permission.id, granted_by: adminId, expires_at: expiresAt })
        .onConflict(['user_id', 'permission_id'])
        .merge({ granted_by: adminId, expires_at: expiresAt, granted_at: trx.fn.now() })
        .returning(['id', 'user_id', 'expires_at', 'granted_by', 'granted_at']);
      await recordEvent(
        trx,
        {
          type: 'permission.granted',
          userId: user.id,
          data: { grant_id: row.id, permission: permission.name, expires_at: expiresAt ? expiresAt.toISOString() : null },
        },
        origin,
      );
      return { ...row, permission: permission.name };
    },
    (g) => g.user_id,
  );
  return {
    id: grant.id,
    user_id: grant.user_id,
    permission: grant.permission,
    expires_at: grant.expires_at ? grant.expires_at.toISOString() : null,
    granted_by: grant.granted_by,
    granted_at: grant.granted_at.toISOString(),
  };
}

export async function revokePermission(app: Context, grantId: string, origin: EventOrigin): Promise<void> {
  await app.permissions.changing(
    app.db,
    async (trx) => {
      const grant = await trx('user_permissions')
        .join('permissions', 'permissions.id', 'user_permissions.permission_id')
        .where('user_permissions.id', grantId)
        .forUpdate('user_permissions')
        .first('user_permissions.user_id', 'permissions.name');
      if (!grant) throw new NotFoundError('No such grant.');
      await trx('user_permissions').where({ id: grantId }).del();
      await recordEvent(
        trx,
        { type: 'permission.revoked', userId: grant.user_id, data: { grant_id: grantId, permission: grant.name } },
        origin,
      );
      return grant.user_id as string;
    },
    (userId) => userId,
  );
}
