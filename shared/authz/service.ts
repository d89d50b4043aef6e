// Authorization: the permission check, listing, and direct grants that may expire. Effective
// permissions come from the database or the permission cache, never from a token's roles claim.
import type { Context } from '../context';
import { BadRequestError, ForbiddenError, NotFoundError, ValidationError } from '../errors';
import { recordEvent, type EventOrigin } from '../events/outbox';
import type { UserPermission } from '../models';
import type { EffectivePermission } from './permissions';

/** Who asks, with their own effective permissions (read once, by whoever authenticated them). */
export interface Caller {
  userId: string;
  permissions: EffectivePermission[];
}

export const holds = (permissions: EffectivePermission[], permission: string): boolean => permissions.some((p) => p.name === permission);

const isLiveUser = async (app: Context, userId: string) =>
  !!(await app.db('users').where({ id: userId }).whereNot({ status: 'deleted' }).first('id'));

/** The permissions a caller may look at: their own, or anyone's with `authz:check_any`. */
async function permissionsOf(
  app: Context,
  caller: Caller,
  userId: string | undefined,
): Promise<{ subject: string; permissions: EffectivePermission[] }> {
  if (!userId || userId === caller.userId) return { subject: caller.userId, permissions: caller.permissions };
  if (!holds(caller.permissions, 'authz:check_any'))
    throw new ForbiddenError('Checking another user needs the authz:check_any permission.');
  if (!(await isLiveUser(app, userId))) throw new NotFoundError('No such user.');
  return { subject: userId, permissions: await app.permissions.get(userId) };
}

/** May `userId` (the caller, or another user whose check the caller may ask for) do `permission`? */
export async function check(
  app: Context,
  caller: Caller,
  userId: string | undefined,
  permission: string,
): Promise<{ allowed: boolean; userId: string }> {
  const { subject, permissions } = await permissionsOf(app, caller, userId);
  return { allowed: holds(permissions, permission), userId: subject };
}

export async function listPermissions(app: Context, caller: Caller, userId: string | undefined): Promise<EffectivePermission[]> {
  return (await permissionsOf(app, caller, userId)).permissions;
}

export type Grant = Pick<UserPermission, 'id' | 'user_id' | 'expires_at' | 'granted_by' | 'granted_at'> & { permission: string };

export async function grantPermission(
  app: Context,
  adminId: string,
  input: { userId: string; permission: string; expiresAt?: string },
  origin: EventOrigin,
): Promise<Grant> {
  const expiresAt = input.expiresAt ? new Date(input.expiresAt) : null;
  if (expiresAt && expiresAt.getTime() <= Date.now())
    throw new ValidationError([{ field: 'expires_at', message: 'must be in the future' }]);
  return app.permissions.changing(
    app.db,
    async (trx) => {
      const permission = await trx('permissions').where({ name: input.permission }).first('id', 'name');
      if (!permission) throw new BadRequestError('unknown_permission', `There is no permission "${input.permission}".`);
      const user = await trx('users').where({ id: input.userId }).whereNot({ status: 'deleted' }).first('id');
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
}

export async function revokePermission(app: Context, grantId: string, origin: EventOrigin): Promise<void> {
  await app.permissions.changing(
    app.db,
    async (trx) => {
      const grant = await trx('user_permissions')
        .join('permissions', 'permissions.id', 'user_permissions.permission_id')
        .where('user_permissions.id', grantId)
        .forUpdate('user_permissions')
        .first<{ user_id: string; name: string } | undefined>('user_permissions.user_id', 'permissions.name');
      if (!grant) throw new NotFoundError('No such grant.');
      await trx('user_permissions').where({ id: grantId }).del();
      await recordEvent(
        trx,
        { type: 'permission.revoked', userId: grant.user_id, data: { grant_id: grantId, permission: grant.name } },
        origin,
      );
      return grant.user_id;
    },
    (userId) => userId,
  );
}
