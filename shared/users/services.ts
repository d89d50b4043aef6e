// Service principals: other platform services, as users of kind `service` with role `service`.
// The client id is the user id; the secret is shown once and stored as a bcrypt hash.
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import { recordEvent } from '../events/outbox';
import { UnauthorizedError, ValidationError } from '../errors';
import type { Context } from '../context';
import { listRoleNames } from '../authz/permissions';
import { dummyHash, hashPassword, verifyPassword } from './passwords';
import { grantRole } from './roles';

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
    await grantRole(trx, user.id, 'service');
    await recordEvent(trx, { type: 'user.registered', userId: user.id, data: { method: 'service' } });
    return user.id;
  });
  return { clientId, clientSecret };
}

/** A 15-minute access token for a service principal (client credentials): no session, no refresh token. */
export async function issueServiceToken(
  app: Context,
  clientId: string,
  clientSecret: string,
  ip: string | null,
): Promise<{ accessToken: string; expiresIn: number }> {
  const limiter = app.limits.serviceTokenPerIp;
  const key = ip ?? '-';
  await limiter.hit(key);
  const service = await app.db('users').where({ id: clientId, kind: 'service', status: 'active' }).first('id', 'password_hash');
  const ok = await verifyPassword(clientSecret, service?.password_hash ?? (await dummyHash(app.config.password.bcryptCost)));
  if (!service || !ok) throw new UnauthorizedError('The client credentials are invalid.', 'invalid_client');
  await limiter.refund(key);
  const roles = await listRoleNames(app.db, service.id);
  return { accessToken: await app.accessTokens.sign({ sub: service.id, roles, amr: ['service'] }), expiresIn: app.accessTokens.ttlSeconds };
}
