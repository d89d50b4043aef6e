// Service principals: other platform services, as users of kind `service` with role `service`.
// The client id is the user id; the secret is shown once and stored as a bcrypt hash.
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import { recordEvent } from '../events/outbox';
import { ValidationError } from '../errors';
import { hashPassword } from './passwords';

export async function createServicePrincipal(
  db: Knex,
  bcryptCost: number,
  name: string,
): Promise<{ clientId: string; clientSecret: string }> {
  if (!/^[a-z][a-z0-9_-]{1,62}$/.test(name))
    throw new ValidationError([{ field: 'name', message: 'must be 2-63 lowercase letters, digits, _ or -, starting with a letter' }]);
  // 256 bits of randomness: bcrypt reads 43 base64url characters in full (under 72 bytes).
  const clientSecret = crypto.randomBytes(32).toString('base64url');
  const secretHash = await hashPassword(clientSecret, bcryptCost);
  const clientId = await db.transaction(async (trx) => {
    const [user] = await trx('users')
      .insert({
        email: `${name}@services.invalid`,
        name,
        kind: 'service',
        status: 'active',
        email_verified: true,
        password_hash: secretHash,
      })
      .returning('id');
    await trx('user_roles').insert({ user_id: user.id, role_id: trx('roles').where({ name: 'service' }).select('id') });
    await recordEvent(trx, { type: 'user.registered', userId: user.id, data: { method: 'service' } });
    return user.id as string;
  });
  return { clientId, clientSecret };
}
