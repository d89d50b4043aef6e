// Service principals: other platform services, as users of kind `service` with role `service`.
// The client id is the user id; the secret is shown once and stored as a bcrypt hash. Their tokens
// have no session, so what a session's liveness does for people, the principal's row does here:
// a disabled principal, or one whose secret changed since the token was issued, is refused at once
// (DESIGN.md, "Service principals").
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import { recordEvent } from '../events/outbox';
import { NotFoundError, UnauthorizedError, ValidationError } from '../errors';
import type { Context } from '../context';
import { listRoleNames } from '../authz/permissions';
import { dummyHash, hashPassword, verifyPassword } from './passwords';
import { grantRole } from './roles';
import { SIGN_IN_STATUSES } from './status';

// 256 bits of randomness: bcrypt reads 43 base64url characters in full (under 72 bytes).
const newClientSecret = () => crypto.randomBytes(32).toString('base64url');

/**
 * When the principal's secret last changed, exact to the microsecond, as text: a token carries it
 * (`cv`), and one issued before a rotation no longer matches.
 */
const CREDENTIAL_VERSION = 'extract(epoch from password_changed_at)::text AS version';

export async function createServicePrincipal(
  db: Knex,
  bcryptCost: number,
  name: string,
): Promise<{ clientId: string; clientSecret: string }> {
  if (!/^[a-z][a-z0-9_-]{1,62}$/.test(name))
    throw new ValidationError([{ field: 'name', message: 'must be 2-63 lowercase letters, digits, _ or -, starting with a letter' }]);
  const clientSecret = newClientSecret();
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
  const service = await app
    .db('users')
    .where({ id: clientId, kind: 'service', status: 'active' })
    .first<{ id: string; password_hash: string | null; version: string | null } | undefined>(
      'id',
      'password_hash',
      app.db.raw(CREDENTIAL_VERSION),
    );
  const ok = await verifyPassword(clientSecret, service?.password_hash ?? (await dummyHash(app.config.password.bcryptCost)));
  if (!service || !ok) throw new UnauthorizedError('The client credentials are invalid.', 'invalid_client');
  await limiter.refund(key);
  const roles = await listRoleNames(app.db, service.id);
  const accessToken = await app.accessTokens.sign({
    sub: service.id,
    roles,
    amr: ['service'],
    credentialVersion: service.version ?? undefined,
  });
  return { accessToken, expiresIn: app.accessTokens.ttlSeconds };
}

/** Whether a token of this principal (or sessionless person) may still act: active, and issued for its current secret. */
export async function isPrincipalLive(app: Pick<Context, 'db'>, userId: string, credentialVersion: string | undefined): Promise<boolean> {
  const row = await app
    .db('users')
    .where({ id: userId })
    .whereIn('status', SIGN_IN_STATUSES)
    .whereRaw('extract(epoch from password_changed_at)::text IS NOT DISTINCT FROM ?', [credentialVersion ?? null])
    .first('id');
  return !!row;
}

async function findPrincipal(trx: Knex.Transaction, clientId: string): Promise<{ id: string; status: string }> {
  const service = await trx('users').where({ id: clientId, kind: 'service' }).forUpdate().first('id', 'status');
  if (!service) throw new NotFoundError(`No service principal with client id ${clientId}.`, 'service_not_found');
  return service;
}

/** Disables (or enables again) a principal: its tokens are refused at once, and it gets no new one. */
export async function setServiceEnabled(db: Knex, clientId: string, enabled: boolean): Promise<'changed' | 'unchanged'> {
  return db.transaction(async (trx) => {
    const service = await findPrincipal(trx, clientId);
    const status = enabled ? 'active' : 'suspended';
    if (service.status === status) return 'unchanged';
    await trx('users').where({ id: service.id }).update({ status, updated_at: trx.fn.now() });
    const type = enabled ? 'user.reactivated' : 'user.suspended';
    await recordEvent(trx, { type, userId: service.id, data: enabled ? {} : { reason_code: 'cli' } });
    return 'changed';
  });
}

/** A new secret for a principal, shown once; every token issued before it is refused at once. */
export async function rotateServiceSecret(db: Knex, bcryptCost: number, clientId: string): Promise<string> {
  const clientSecret = newClientSecret();
  const secretHash = await hashPassword(clientSecret, bcryptCost);
  await db.transaction(async (trx) => {
    const service = await findPrincipal(trx, clientId);
    await trx('users')
      .where({ id: service.id })
      .update({ password_hash: secretHash, password_changed_at: trx.fn.now(), updated_at: trx.fn.now() });
    await recordEvent(trx, { type: 'service.secret_rotated', userId: service.id, data: {} });
  });
  return clientSecret;
}
