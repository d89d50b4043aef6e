// Operators' way in: create an admin, or promote an existing user, from the command line.
import type { Knex } from 'knex';
import type { Config } from '../config';
import type { PermissionCache } from '../authz/cache';
import { recordEvent } from '../events/outbox';
import { ValidationError } from '../errors';
import { assertPasswordPolicy } from './password-policy';
import { hashPassword } from './passwords';
import { normalizeEmail } from './email';

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
      const existing = await trx('users')
        .where({ email: normalizeEmail(email) })
        .whereNot({ status: 'deleted' })
        .forUpdate()
        .first('id');
      let userId = existing?.id;
      if (!userId) {
        const name = input.name?.trim() || email.split('@')[0];
        if (!input.password) throw new ValidationError([{ field: 'password', message: 'is required to create a new admin' }]);
        assertPasswordPolicy(input.password, 'password', { email, name }, config.password);
        const passwordHash = await hashPassword(input.password, config.password.bcryptCost);
        const [created] = await trx('users')
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
        userId = created.id;
        await recordEvent(trx, { type: 'user.registered', userId, data: { method: 'cli' } });
      }
      const inserted = await trx('user_roles')
        .insert({ user_id: userId, role_id: trx.raw(`(SELECT id FROM roles WHERE name = 'admin')`) })
        .onConflict(['user_id', 'role_id'])
        .ignore()
        .returning('user_id');
      if (inserted.length) await recordEvent(trx, { type: 'role.assigned', userId, data: { role: 'admin', via: 'cli' } });
      return { userId, created: !existing, promoted: inserted.length > 0 };
    },
    (result) => result.userId,
  );
}
