// Operators' way in: create an admin, or promote an existing user, from the command line.
import type { Knex } from 'knex';
import type { Config } from '../config';
import type { PermissionCache } from '../authz/cache';
import { recordEvent } from '../events/outbox';
import { ValidationError } from '../errors';
import { assertPasswordPolicy } from './password-policy';
import { hashPassword } from './passwords';

export interface AdminResult {
  userId: string;
  created: boolean;
  promoted: boolean;
}

export async function createOrPromoteAdmin(
  db: Knex,
  permissions: PermissionCache,
  config: Pick<Config, 'password'>,
  input: { email: string; name?: string; password?: string },
): Promise<AdminResult> {
  const email = input.email.trim();
  if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) throw new ValidationError([{ field: 'email', message: 'must be a valid email' }]);
  return permissions.changing(
    db,
    async (trx) => {
      const adminRole = await trx('roles').where({ name: 'admin' }).first('id');
      let user = await trx('users').where({ email }).whereNot({ status: 'deleted' }).forUpdate().first('id');
      let created = false;
      if (!user) {
        const name = input.name?.trim() || email.split('@')[0];
        if (!input.password) throw new ValidationError([{ field: 'password', message: 'is required to create a new admin' }]);
        assertPasswordPolicy(input.password, 'password', { email, name }, config.password);
        const passwordHash = await hashPassword(input.password, config.password.bcryptCost);
        [user] = await trx('users')
          .insert({
            email,
            name,
            password_hash: passwordHash,
            password_changed_at: trx.fn.now(),
            status: 'active',
            email_verified: true,
            email_verified_at: trx.fn.now(),
          })
          .returning('id');
        await recordEvent(trx, { type: 'user.registered', userId: user.id, data: { method: 'cli' } });
        created = true;
      }
      const inserted = await trx('user_roles')
        .insert({ user_id: user.id, role_id: adminRole.id })
        .onConflict(['user_id', 'role_id'])
        .ignore()
        .returning('user_id');
      if (inserted.length) await recordEvent(trx, { type: 'role.assigned', userId: user.id, data: { role: 'admin', via: 'cli' } });
      return { userId: user.id as string, created, promoted: inserted.length > 0 };
    },
    (result) => result.userId,
  );
}
