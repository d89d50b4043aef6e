// Small factories for users in the test database.
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import { hashPassword } from '../../shared/users/passwords';
import type { UserStatus } from '../../shared/models';

export interface TestUser {
  id: string;
  email: string;
  password: string;
}

export async function createUser(
  db: Knex,
  options: { roles?: string[]; status?: string; password?: string; email?: string } = {},
): Promise<TestUser> {
  const email = options.email ?? `user-${crypto.randomBytes(4).toString('hex')}@example.com`;
  const password = options.password ?? `Pw-${crypto.randomBytes(9).toString('base64url')}!9a`;
  const [{ id }] = await db('users')
    .insert({
      email,
      name: 'Test User',
      password_hash: await hashPassword(password, 4),
      status: (options.status ?? 'active') as UserStatus,
      email_verified: true,
    })
    .returning('id');
  for (const role of options.roles ?? ['trader']) {
    const { id: roleId } = (await db('roles').where({ name: role }).first('id'))!;
    await db('user_roles').insert({ user_id: id, role_id: roleId });
  }
  return { id, email, password };
}
