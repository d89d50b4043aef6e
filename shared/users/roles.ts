// Roles of users: the role a new account gets, and assignment by operators (the CLI); every change
// of an existing user's roles invalidates their cached permissions.
import type { Knex } from 'knex';
import { recordEvent } from '../events/outbox';
import { NotFoundError } from '../errors';
import type { PermissionCache } from '../authz/cache';
import { normalizeEmail } from './email';

/** The role of every new person: registered with a password or, later, with Google. */
export const DEFAULT_ROLE = 'trader';

/** Gives a user a role by its name, inside the caller's transaction (a new user: nothing to invalidate). */
export async function grantRole(trx: Knex.Transaction, userId: string, role: string): Promise<void> {
  await trx('user_roles').insert({ user_id: userId, role_id: trx.raw('(SELECT id FROM roles WHERE name = ?)', [role]) });
}

export async function setRole(
  db: Knex,
  permissions: PermissionCache,
  input: { email: string; role: string; assign: boolean },
): Promise<'assigned' | 'removed' | 'unchanged'> {
  const outcome = await permissions.changing(
    db,
    async (trx) => {
      const user = await trx('users')
        .where({ email: normalizeEmail(input.email) })
        .whereNot({ status: 'deleted' })
        .first('id');
      if (!user) throw new NotFoundError(`No user with email ${input.email}.`);
      const role = await trx('roles').where({ name: input.role }).first('id');
      if (!role) throw new NotFoundError(`No role "${input.role}" (${(await trx('roles').orderBy('name').pluck('name')).join(', ')}).`);
      const changed = input.assign
        ? (
            await trx('user_roles')
              .insert({ user_id: user.id, role_id: role.id })
              .onConflict(['user_id', 'role_id'])
              .ignore()
              .returning('user_id')
          ).length
        : await trx('user_roles').where({ user_id: user.id, role_id: role.id }).del();
      if (changed)
        await recordEvent(trx, {
          type: input.assign ? 'role.assigned' : 'role.removed',
          userId: user.id,
          data: { role: input.role, via: 'cli' },
        });
      return { userId: user.id, changed: changed > 0 };
    },
    (o) => o.userId,
  );
  return outcome.changed ? (input.assign ? 'assigned' : 'removed') : 'unchanged';
}
